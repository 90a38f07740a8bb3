//! Buffers: allocation within the adapter limits, uploads, and queued copies and clears.

use super::pool::UNIFORM_WINDOW;
use super::submit::Command;
use super::{Gpu, GpuBuffer};
use crate::error::{Error, Result};

impl Gpu {
    /// A storage buffer of at least `len` f32 values (contents undefined), from the pool.
    pub fn alloc(&self, name: &str, len: usize) -> Result<GpuBuffer> {
        let bytes = (len.max(1) * 4) as u64;
        let limit = self.inner.limits.max_storage_buffer_binding_size;
        if bytes > limit {
            return Err(Error::TooLarge {
                name: name.to_string(),
                bytes,
                limit,
                what: "max_storage_buffer_binding_size",
            });
        }
        if bytes > self.inner.limits.max_buffer_size {
            return Err(Error::TooLarge {
                name: name.to_string(),
                bytes,
                limit: self.inner.limits.max_buffer_size,
                what: "max_buffer_size",
            });
        }
        Ok(self.inner.pool.get(&self.inner.device, bytes, false))
    }

    /// [`Gpu::alloc`] for a weight that kernels read at the same index in every lane: where
    /// the launch policy wants it (CPU adapters) and it fits, a buffer that can also be bound
    /// as a uniform window (padded to [`UNIFORM_WINDOW`] bytes), else a plain one.
    pub fn alloc_weight(&self, name: &str, len: usize) -> Result<GpuBuffer> {
        let bytes = (len.max(1) * 4) as u64;
        let fits = self.inner.limits.max_uniform_buffer_binding_size >= UNIFORM_WINDOW;
        if fits && self.policy().weight_as_uniform(bytes) {
            return Ok(self.inner.pool.get(&self.inner.device, bytes, true));
        }
        self.alloc(name, len)
    }

    /// What to bind at a kernel's uniform weight window when the weight is not in one (its
    /// UW = 0 path never reads it): one window per device (wgpu zero-initialises it).
    pub(crate) fn window_placeholder(&self) -> GpuBuffer {
        let mut st = self.inner.state.borrow_mut();
        st.window_placeholder
            .get_or_insert_with(|| {
                self.inner
                    .pool
                    .get(&self.inner.device, UNIFORM_WINDOW, true)
            })
            .clone()
    }

    /// What to bind at a kernel's uniform window for the weight in `buf`, and whether it is
    /// that weight (the kernel's UW constant): the buffer itself where it can be bound as a
    /// uniform, else the placeholder.
    pub(crate) fn window_for(&self, buf: &GpuBuffer) -> (bool, GpuBuffer) {
        if buf.uniform_window() {
            (true, buf.clone())
        } else {
            (false, self.window_placeholder())
        }
    }

    /// Writes f32 data at the start of `buf` (queued; ordered before later submissions).
    pub fn write(&self, buf: &GpuBuffer, data: &[f32]) {
        self.write_bytes(buf, bytemuck::cast_slice(data));
    }

    pub fn write_u32(&self, buf: &GpuBuffer, data: &[u32]) {
        self.write_bytes(buf, bytemuck::cast_slice(data));
    }

    fn write_bytes(&self, buf: &GpuBuffer, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        // Writes land before the next submit, so flush what was recorded earlier first:
        // otherwise a kernel queued before this write would see the new data.
        self.flush();
        self.inner.queue.write_buffer(buf.raw(), 0, bytes);
    }

    /// Queues a buffer-to-buffer copy of `len` f32 values.
    pub fn copy(&self, src: &GpuBuffer, dst: &GpuBuffer, len: usize) {
        self.copy_range(src, 0, dst, 0, len);
    }

    /// Queues a copy of `len` f32 values from `src[src_at..]` to `dst[dst_at..]`.
    pub fn copy_range(
        &self,
        src: &GpuBuffer,
        src_at: usize,
        dst: &GpuBuffer,
        dst_at: usize,
        len: usize,
    ) {
        if len == 0 {
            return;
        }
        if let Some((_, touched)) = self.inner.state.borrow_mut().recording.as_mut() {
            touched.extend([src.id(), dst.id()]);
        }
        self.push(Command::Copy {
            src: src.raw().clone(),
            src_offset: (src_at * 4) as u64,
            dst: dst.raw().clone(),
            dst_offset: (dst_at * 4) as u64,
            bytes: (len * 4) as u64,
        });
    }

    /// Queues zeroing the first `len` f32 values of `buf` (a clear command, no launch).
    pub fn clear(&self, buf: &GpuBuffer, len: usize) {
        if len == 0 {
            return;
        }
        if let Some((_, touched)) = self.inner.state.borrow_mut().recording.as_mut() {
            touched.push(buf.id());
        }
        self.push(Command::Clear {
            dst: buf.raw().clone(),
            bytes: (len * 4) as u64,
        });
    }
}
