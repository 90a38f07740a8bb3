//! Buffer pool: storage buffers are recycled by exact size, so a training step that repeats
//! the same shapes allocates nothing after its first run.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::{Rc, Weak};

pub type BufId = u64;

/// A pooled GPU buffer; dropping the last handle returns it to the pool.
#[derive(Clone)]
pub struct GpuBuffer(Rc<BufInner>);

struct BufInner {
    id: BufId,
    bytes: u64,
    raw: Option<wgpu::Buffer>,
    pool: Weak<RefCell<PoolState>>,
    pooled: bool,
}

impl GpuBuffer {
    pub fn id(&self) -> BufId {
        self.0.id
    }
    pub fn bytes(&self) -> u64 {
        self.0.bytes
    }
    pub(crate) fn raw(&self) -> &wgpu::Buffer {
        self.0.raw.as_ref().expect("buffer present until drop")
    }
}

impl Drop for BufInner {
    fn drop(&mut self) {
        if !self.pooled {
            return;
        }
        if let (Some(pool), Some(raw)) = (self.pool.upgrade(), self.raw.take()) {
            if let Ok(mut st) = pool.try_borrow_mut() {
                st.free.entry(self.bytes).or_default().push((self.id, raw));
                st.live -= self.bytes;
            }
        }
    }
}

#[derive(Default)]
struct PoolState {
    free: HashMap<u64, Vec<(BufId, wgpu::Buffer)>>,
    next_id: BufId,
    /// Bytes handed out and not yet returned.
    live: u64,
    /// Bytes ever created (live + free), and its peak.
    total: u64,
    peak_live: u64,
}

/// Pool accounting, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryStats {
    /// Held by live tensors now.
    pub live: u64,
    /// The most ever held by live tensors at once.
    pub peak: u64,
    /// Created on the device (live + free in the pool).
    pub reserved: u64,
}

pub(crate) struct Pool {
    state: Rc<RefCell<PoolState>>,
}

impl Pool {
    pub fn new() -> Self {
        Pool {
            state: Rc::new(RefCell::new(PoolState::default())),
        }
    }

    pub fn usage(&self) -> MemoryStats {
        let st = self.state.borrow();
        MemoryStats {
            live: st.live,
            peak: st.peak_live,
            reserved: st.total,
        }
    }

    pub fn get(&self, device: &wgpu::Device, bytes: u64) -> GpuBuffer {
        // Round to 256 bytes so near-equal sizes share buffers.
        let bytes = bytes.div_ceil(256) * 256;
        let mut st = self.state.borrow_mut();
        st.live += bytes;
        st.peak_live = st.peak_live.max(st.live);
        let (id, raw) = match st.free.get_mut(&bytes).and_then(|v| v.pop()) {
            Some(x) => x,
            None => {
                st.next_id += 1;
                st.total += bytes;
                let raw = device.create_buffer(&wgpu::BufferDescriptor {
                    label: None,
                    size: bytes,
                    usage: wgpu::BufferUsages::STORAGE
                        | wgpu::BufferUsages::COPY_SRC
                        | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                });
                (st.next_id, raw)
            }
        };
        GpuBuffer(Rc::new(BufInner {
            id,
            bytes,
            raw: Some(raw),
            pool: Rc::downgrade(&self.state),
            pooled: true,
        }))
    }

    /// A uniform buffer holding `data`; not pooled (the runtime caches these by value).
    pub fn uniform(&self, device: &wgpu::Device, data: &[u32]) -> GpuBuffer {
        use wgpu::util::DeviceExt;
        let raw = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("params"),
            contents: bytemuck::cast_slice(data),
            usage: wgpu::BufferUsages::UNIFORM,
        });
        let mut st = self.state.borrow_mut();
        st.next_id += 1;
        GpuBuffer(Rc::new(BufInner {
            id: st.next_id,
            bytes: (data.len() * 4) as u64,
            raw: Some(raw),
            pool: Weak::new(),
            pooled: false,
        }))
    }
}
