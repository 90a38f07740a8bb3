//! Recording a sequence of commands once and replaying it as one submission.

use super::submit::Command;
use super::{pool, Gpu};

/// A recorded sequence of GPU commands (a whole training step, say) that can be replayed
/// with new contents in its buffers. Every buffer it touched stays out of the pool while it
/// lives; buffers reused within the recording (by liveness) stay shared, so a program needs
/// no more memory than one eager run of the same commands.
pub struct Program {
    commands: Vec<Command>,
    _pins: pool::PinGuard,
}

impl Program {
    /// Kernel dispatches in the program (each replay issues them all).
    pub fn dispatches(&self) -> usize {
        self.commands
            .iter()
            .filter(|c| matches!(c, Command::Dispatch { .. }))
            .count()
    }
}

impl Gpu {
    /// Starts recording every command issued from now on into a [`Program`].
    pub fn begin_recording(&self) {
        self.flush();
        self.inner.state.borrow_mut().recording = Some((Vec::new(), Vec::new()));
    }

    /// Ends recording. None of the buffers the program touched is handed out again by the
    /// pool (where replay would overwrite someone else's data) while the program lives.
    pub fn end_recording(&self) -> Program {
        self.flush();
        let (commands, mut touched) = self
            .inner
            .state
            .borrow_mut()
            .recording
            .take()
            .unwrap_or_default();
        touched.sort_unstable();
        touched.dedup();
        let _pins = self.inner.pool.pin(&touched);
        Program { commands, _pins }
    }

    /// Re-runs a recorded program as one submission.
    pub fn replay(&self, program: &Program) {
        self.flush();
        self.encode_and_submit(&program.commands, None);
    }
}
