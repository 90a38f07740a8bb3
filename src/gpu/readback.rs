//! Reading buffers back to the CPU: one staging copy and one wait for any number of buffers.

use super::{Gpu, GpuBuffer};
use crate::error::{Error, Result};

impl Gpu {
    /// Reads `len` f32 values from the start of `buf` (flushes and waits).
    pub fn read(&self, buf: &GpuBuffer, len: usize) -> Result<Vec<f32>> {
        Ok(self.read_many(&[(buf, len)])?.remove(0))
    }

    /// Reads several buffers (the first `len` values of each) with one copy submission and one
    /// wait, instead of a round trip per buffer.
    pub fn read_many(&self, bufs: &[(&GpuBuffer, usize)]) -> Result<Vec<Vec<f32>>> {
        let total: usize = bufs.iter().map(|(_, n)| n).sum();
        if total == 0 {
            return Ok(bufs.iter().map(|_| Vec::new()).collect());
        }
        let staging = self.inner.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size: (total * 4) as u64,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        self.flush();
        let mut enc = self
            .inner
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None });
        let mut at = 0u64;
        for (buf, n) in bufs {
            let bytes = (*n * 4) as u64;
            if bytes > 0 {
                enc.copy_buffer_to_buffer(buf.raw(), 0, &staging, at, bytes);
            }
            at += bytes;
        }
        self.inner.queue.submit([enc.finish()]);
        self.wait_mapped(&staging)?;
        self.check_error()?;
        let all = {
            let view = staging
                .get_mapped_range(..)
                .map_err(|e| Error::Gpu(e.to_string()))?;
            bytemuck::cast_slice::<u8, f32>(&view).to_vec()
        };
        staging.unmap();
        let mut out = Vec::with_capacity(bufs.len());
        let mut from = 0;
        for (_, n) in bufs {
            out.push(all[from..from + n].to_vec());
            from += n;
        }
        Ok(out)
    }

    /// Maps `buf` (MAP_READ) for reading, waiting for the work submitted before.
    pub(super) fn wait_mapped(&self, buf: &wgpu::Buffer) -> Result<()> {
        let (tx, rx) = std::sync::mpsc::channel();
        buf.map_async(wgpu::MapMode::Read, .., move |r| {
            let _ = tx.send(r);
        });
        self.inner
            .device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::Gpu(e.to_string()))?;
        rx.recv()
            .map_err(|e| Error::Gpu(e.to_string()))?
            .map_err(|e| Error::Gpu(e.to_string()))
    }
}
