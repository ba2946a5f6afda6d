//! Output to a pipe whose reader has gone (`etl runs | head`): the command stops quietly and
//! exits 0, as ripgrep and most Unix tools do, instead of panicking with a stack trace. Rust
//! ignores SIGPIPE so that a write to a closed socket is an error rather than the end of the
//! process (the connectors write to sockets), so `println!` panics with "failed printing to
//! stdout: Broken pipe"; that one panic is recognised, printed by no hook, and caught here
//! after the command's own clean-up (the staging file closed) has run while unwinding.

use std::any::Any;
use std::panic::{self, AssertUnwindSafe};

/// Runs `command`; a print to a closed pipe ends it with exit 0, any other panic goes on as
/// before (printed by the default hook, then unwound further).
pub fn quiet_on_closed_pipe(command: impl FnOnce() -> i32) -> i32 {
    let default_hook = panic::take_hook();
    panic::set_hook(Box::new(move |info| {
        if !is_closed_pipe(info.payload()) {
            default_hook(info);
        }
    }));
    match panic::catch_unwind(AssertUnwindSafe(command)) {
        Ok(code) => code,
        Err(payload) if is_closed_pipe(payload.as_ref()) => 0,
        Err(payload) => panic::resume_unwind(payload),
    }
}

/// Whether a panic is std's for a print whose reader closed the pipe.
fn is_closed_pipe(payload: &(dyn Any + Send)) -> bool {
    let message = payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied());
    message.is_some_and(|m| m.starts_with("failed printing to std") && m.contains("Broken pipe"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_print_to_a_closed_pipe_counts() {
        let closed = String::from("failed printing to stdout: Broken pipe (os error 32)");
        assert!(is_closed_pipe(&closed));
        let other = String::from("failed printing to stdout: No space left on device");
        assert!(!is_closed_pipe(&other));
        assert!(!is_closed_pipe(&"index out of bounds"));
    }
}
