//! Batching: commands queue on the handle and go to the GPU in as few submissions as
//! possible (one compute pass per run of dispatches); waiting and error checks.

use super::launch::GpuTimer;
use super::Gpu;
use crate::error::{Error, Result};
use std::sync::Arc;

/// One recorded command: replay re-encodes these in order.
#[derive(Clone)]
pub(super) enum Command {
    Dispatch {
        pipeline: Arc<wgpu::ComputePipeline>,
        bind_group: Arc<wgpu::BindGroup>,
        grid: [u32; 3],
    },
    Copy {
        src: wgpu::Buffer,
        src_offset: u64,
        dst: wgpu::Buffer,
        dst_offset: u64,
        bytes: u64,
    },
    Clear {
        dst: wgpu::Buffer,
        bytes: u64,
    },
}

impl Gpu {
    pub(super) fn push(&self, cmd: Command) {
        let mut st = self.inner.state.borrow_mut();
        if let Some((rec, _)) = st.recording.as_mut() {
            rec.push(cmd.clone());
        }
        st.pending.push(cmd);
        // Keep command buffers bounded during long eager graphs.
        if st.pending.len() >= 4096 {
            drop(st);
            self.flush();
        }
    }

    /// Submits everything queued so far in one command buffer.
    pub fn flush(&self) {
        let cmds = std::mem::take(&mut self.inner.state.borrow_mut().pending);
        if cmds.is_empty() {
            return;
        }
        self.encode_and_submit(&cmds, None);
    }

    /// Submits what is queued (one run of dispatches) as one pass timed by `timer`; waits and
    /// returns the pass's GPU time in seconds.
    pub(super) fn flush_timed(&self, timer: &GpuTimer) -> Result<f64> {
        let cmds = std::mem::take(&mut self.inner.state.borrow_mut().pending);
        self.encode_and_submit(&cmds, Some(timer));
        timer.read(self)
    }

    /// Encodes `cmds` (one compute pass per run of dispatches; with `timer`, whose
    /// timestamps bracket the first pass, there should be one) and submits them.
    pub(super) fn encode_and_submit(&self, cmds: &[Command], timer: Option<&GpuTimer>) {
        let t0 = std::time::Instant::now();
        let mut enc = self
            .inner
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None });
        let mut i = 0;
        let mut n_dispatch = 0u64;
        while i < cmds.len() {
            if let Command::Copy {
                src,
                src_offset,
                dst,
                dst_offset,
                bytes,
            } = &cmds[i]
            {
                enc.copy_buffer_to_buffer(src, *src_offset, dst, *dst_offset, *bytes);
                i += 1;
                continue;
            }
            if let Command::Clear { dst, bytes } = &cmds[i] {
                enc.clear_buffer(dst, 0, Some(*bytes));
                i += 1;
                continue;
            }
            // One compute pass for each run of dispatches.
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: None,
                timestamp_writes: timer.map(GpuTimer::writes),
            });
            while let Some(Command::Dispatch {
                pipeline,
                bind_group,
                grid,
                ..
            }) = cmds.get(i)
            {
                pass.set_pipeline(pipeline);
                pass.set_bind_group(0, Some(bind_group.as_ref()), &[]);
                pass.dispatch_workgroups(grid[0], grid[1], grid[2]);
                n_dispatch += 1;
                i += 1;
            }
        }
        if let Some(timer) = timer {
            timer.resolve(&mut enc);
        }
        self.inner.queue.submit([enc.finish()]);
        let mut st = self.inner.state.borrow_mut();
        st.dispatches += n_dispatch;
        st.submissions += 1;
        st.encode_secs += t0.elapsed().as_secs_f64();
    }

    /// Waits for all submitted work.
    pub fn sync(&self) -> Result<()> {
        self.flush();
        self.inner
            .device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::Gpu(e.to_string()))?;
        self.check_error()
    }

    /// Returns the first GPU validation error seen since the last check.
    pub fn check_error(&self) -> Result<()> {
        match self.inner.error.lock().unwrap().take() {
            Some(e) => Err(Error::Gpu(e)),
            None => Ok(()),
        }
    }
}
