//! Buffer pool: storage buffers are recycled by exact size, so a training step that repeats
//! the same shapes allocates nothing after its first run.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::{Rc, Weak};

pub type BufId = u64;

/// Bytes a buffer that can also be bound as a uniform has at least: the weight window
/// `conv.wgsl`'s `forward4` declares (4,096 vec4s), WebGPU's guaranteed
/// maxUniformBufferBindingSize. A uniform binding must be as large as its declaration.
pub const UNIFORM_WINDOW: u64 = 65_536;

/// What the pool recycles by: a buffer's size, and whether it can also be bound as a uniform
/// (which plain storage buffers cannot).
type Key = (u64, bool);

/// A pooled GPU buffer; dropping the last handle returns it to the pool.
#[derive(Clone)]
pub struct GpuBuffer(Rc<BufInner>);

struct BufInner {
    id: BufId,
    bytes: u64,
    /// Also bindable as a uniform buffer (usage UNIFORM, at least UNIFORM_WINDOW bytes).
    uniform: bool,
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
    /// Whether kernels may bind this buffer as a uniform as well as for storage.
    pub fn uniform_window(&self) -> bool {
        self.0.uniform
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
                if st.pins.contains_key(&self.id) {
                    // A recorded program still uses it: it stays in use (and counted live).
                    st.pinned_free
                        .insert(self.id, ((self.bytes, self.uniform), raw));
                } else {
                    let key = (self.bytes, self.uniform);
                    st.free.entry(key).or_default().push((self.id, raw));
                    st.live -= self.bytes;
                }
            }
        }
    }
}

#[derive(Default)]
struct PoolState {
    free: HashMap<Key, Vec<(BufId, wgpu::Buffer)>>,
    next_id: BufId,
    /// Bytes handed out and not yet returned.
    live: u64,
    /// Bytes ever created (live + free), and its peak.
    total: u64,
    peak_live: u64,
    /// Buffers used by recorded programs: id → number of programs. While pinned, a buffer
    /// whose last handle drops is parked in `pinned_free` instead of being handed out again.
    pins: HashMap<BufId, usize>,
    pinned_free: HashMap<BufId, (Key, wgpu::Buffer)>,
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

    /// Restarts peak tracking from the current live bytes (for measuring one phase).
    pub fn reset_peak(&self) {
        let mut st = self.state.borrow_mut();
        st.peak_live = st.live;
    }

    /// Pins `ids` for a recorded program: none of them is handed out again until the
    /// returned guard drops. Buffers already back in the pool are taken out of it.
    pub fn pin(&self, ids: &[BufId]) -> PinGuard {
        let mut st = self.state.borrow_mut();
        for &id in ids {
            *st.pins.entry(id).or_default() += 1;
        }
        let wanted: std::collections::HashSet<BufId> = ids.iter().copied().collect();
        let mut parked = Vec::new();
        for (&key, list) in st.free.iter_mut() {
            let mut i = 0;
            while i < list.len() {
                if wanted.contains(&list[i].0) {
                    let (id, raw) = list.swap_remove(i);
                    parked.push((id, key, raw));
                } else {
                    i += 1;
                }
            }
        }
        for (id, key, raw) in parked {
            st.live += key.0;
            st.pinned_free.insert(id, (key, raw));
        }
        st.peak_live = st.peak_live.max(st.live);
        PinGuard {
            pool: Rc::downgrade(&self.state),
            ids: ids.to_vec(),
        }
    }

    /// A storage buffer of at least `bytes`; with `uniform` one that can also be bound as a
    /// uniform buffer, and so holds at least [`UNIFORM_WINDOW`] bytes (counted in full).
    pub fn get(&self, device: &wgpu::Device, bytes: u64, uniform: bool) -> GpuBuffer {
        // Round to 256 bytes so near-equal sizes share buffers.
        let mut bytes = bytes.div_ceil(256) * 256;
        let mut usage = wgpu::BufferUsages::STORAGE
            | wgpu::BufferUsages::COPY_SRC
            | wgpu::BufferUsages::COPY_DST;
        if uniform {
            bytes = bytes.max(UNIFORM_WINDOW);
            usage |= wgpu::BufferUsages::UNIFORM;
        }
        let mut st = self.state.borrow_mut();
        st.live += bytes;
        st.peak_live = st.peak_live.max(st.live);
        let (id, raw) = match st.free.get_mut(&(bytes, uniform)).and_then(|v| v.pop()) {
            Some(x) => x,
            None => {
                st.next_id += 1;
                st.total += bytes;
                let raw = device.create_buffer(&wgpu::BufferDescriptor {
                    label: None,
                    size: bytes,
                    usage,
                    mapped_at_creation: false,
                });
                (st.next_id, raw)
            }
        };
        GpuBuffer(Rc::new(BufInner {
            id,
            bytes,
            uniform,
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
            // Not a weight window: smaller than UNIFORM_WINDOW, and no storage usage.
            uniform: false,
            raw: Some(raw),
            pool: Weak::new(),
            pooled: false,
        }))
    }
}

/// Keeps a program's buffers out of the pool; dropping it returns the parked ones.
pub(crate) struct PinGuard {
    pool: Weak<RefCell<PoolState>>,
    ids: Vec<BufId>,
}

impl Drop for PinGuard {
    fn drop(&mut self) {
        let Some(pool) = self.pool.upgrade() else {
            return;
        };
        let Ok(mut st) = pool.try_borrow_mut() else {
            return;
        };
        for id in &self.ids {
            let Some(n) = st.pins.get_mut(id) else {
                continue;
            };
            *n -= 1;
            if *n > 0 {
                continue;
            }
            st.pins.remove(id);
            if let Some((key, raw)) = st.pinned_free.remove(id) {
                st.free.entry(key).or_default().push((*id, raw));
                st.live -= key.0;
            }
        }
    }
}
