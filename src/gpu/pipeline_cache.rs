//! Compiled pipelines kept across runs: wgpu's `PipelineCache` (Vulkan's `VkPipelineCache`),
//! read from disk when the device opens and written back when it closes, on adapters that
//! support it. The data carries wgpu's header (adapter, driver version, hash), so a file from
//! another driver, an older wgpu or a damaged disk is ignored, never trusted: a cache can only
//! make start-up faster, not change what runs.
//!
//! Where it lives: `DARTS_MINUS_PIPELINE_CACHE` (a directory, or `off`), else
//! `$XDG_CACHE_HOME/darts-minus`, else `~/.cache/darts-minus`; one file per adapter
//! (`wgpu::util::pipeline_cache_key`).

use std::path::{Path, PathBuf};

/// How a run asked for the cache: `None` the default directory, `Some("off")` none, otherwise
/// a directory.
pub(crate) fn directory(choice: Option<&str>) -> Option<PathBuf> {
    match choice.map(str::trim) {
        Some("off" | "0" | "none") => None,
        Some(dir) if !dir.is_empty() => Some(PathBuf::from(dir)),
        _ => std::env::var_os("XDG_CACHE_HOME")
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))
            .map(|d| d.join("darts-minus")),
    }
}

/// The file the adapter's cache lives in, if the adapter supports one and a directory is set.
pub(crate) fn file_for(adapter: &wgpu::Adapter, choice: Option<&str>) -> Option<PathBuf> {
    if !adapter.features().contains(wgpu::Features::PIPELINE_CACHE) {
        return None;
    }
    let key = wgpu::util::pipeline_cache_key(&adapter.get_info())?;
    Some(directory(choice)?.join(format!("{key}.bin")))
}

/// An open cache and the file it is saved to.
pub(crate) struct DiskCache {
    pub cache: wgpu::PipelineCache,
    pub path: PathBuf,
    /// Bytes read at start (0: none, unreadable, or ignored by wgpu's checks).
    pub loaded: usize,
}

impl DiskCache {
    /// Opens the cache at `path` on `device` (which must have been created with
    /// `Features::PIPELINE_CACHE`), seeded from the file when it holds usable data.
    pub fn open(device: &wgpu::Device, path: PathBuf) -> DiskCache {
        let data = std::fs::read(&path).ok();
        // SAFETY: wgpu requires the data to come from `PipelineCache::get_data`; this file is
        // only ever written by `save` below, and wgpu checks its header (magic, wgpu ABI,
        // adapter, driver version) and a hash of the body before handing it to the driver,
        // falling back to an empty cache (`fallback`) on any mismatch.
        let cache = unsafe {
            device.create_pipeline_cache(&wgpu::PipelineCacheDescriptor {
                label: Some("darts-minus pipelines"),
                data: data.as_deref(),
                fallback: true,
            })
        };
        DiskCache {
            cache,
            path,
            loaded: data.map_or(0, |d| d.len()),
        }
    }

    /// Writes the cache's data to its file (atomically: a crash leaves the old file or the new
    /// one). Returns the bytes written; 0 when the driver has nothing to store.
    pub fn save(&self) -> std::io::Result<usize> {
        let Some(data) = self.cache.get_data() else {
            return Ok(0);
        };
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        // Unique per process and per save: devices of one process (tests run them in
        // parallel threads) may close at the same moment.
        static SAVES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = SAVES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = self
            .path
            .with_extension(format!("tmp{}-{n}", std::process::id()));
        std::fs::write(&tmp, &data)?;
        std::fs::rename(&tmp, &self.path)?;
        Ok(data.len())
    }
}

#[cfg(test)]
mod tests {
    use super::directory;
    use std::path::PathBuf;

    #[test]
    fn off_and_explicit_directories() {
        assert_eq!(directory(Some("off")), None);
        assert_eq!(directory(Some(" 0 ")), None);
        assert_eq!(directory(Some("/tmp/pc")), Some(PathBuf::from("/tmp/pc")));
    }
}
