//! Going further: progress bars for long transfers, the one home of the
//! bars `pull` draws for its layers and chapter 6's `push` for its blobs.
//!
//! No kernel feature here: a bar per blob, drawn on stderr when stderr is
//! a terminal (see isatty(3)), and nothing drawn otherwise, so that a log
//! or a pipe gets the caller's plain lines instead of escape sequences.
//! stdout stays for the user's summary lines, printed above the bars.

use std::io::IsTerminal;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// The bars of one transfer (a pull or a push), one per blob.
pub struct Transfers {
    multi: MultiProgress,
    style: ProgressStyle,
    terminal: bool,
}

impl Transfers {
    /// Bars drawn on stderr if it is a terminal, hidden otherwise.
    pub fn on_stderr() -> Transfers {
        let terminal = std::io::stderr().is_terminal();
        let target = if terminal {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let style = ProgressStyle::with_template(
            "{prefix}: {msg:11} [{bar:30}] {binary_bytes:>10}/{binary_total_bytes:<10} {binary_bytes_per_sec:>12}",
        )
        .map(|style| style.progress_chars("=> "))
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        Transfers {
            multi: MultiProgress::with_draw_target(target),
            style,
            terminal,
        }
    }

    /// Whether the bars are drawn: without a terminal the caller prints a
    /// plain line per finished blob instead.
    pub fn drawn(&self) -> bool {
        self.terminal
    }

    /// A bar for `size` bytes labelled `label` (a short id), showing
    /// `message` ("downloading", "Pushing") until the caller changes it.
    pub fn add(&self, label: &str, size: u64, message: &'static str) -> ProgressBar {
        let bar = self.multi.add(ProgressBar::new(size));
        bar.set_style(self.style.clone());
        bar.set_prefix(label.to_string());
        bar.set_message(message);
        bar
    }

    /// `line` on stdout: above the bars when they are drawn (printing past
    /// them would tear them), plainly otherwise.
    pub fn println(&self, line: &str) {
        if self.terminal {
            let _ = self.multi.println(line);
        } else {
            println!("{line}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_count_bytes_whether_drawn_or_not() {
        let transfers = Transfers::on_stderr();
        let bar = transfers.add("0123456789ab", 100, "downloading");
        bar.inc(60);
        bar.inc(40);
        assert_eq!(bar.position(), 100);
        assert_eq!(bar.length(), Some(100));
        assert_eq!(bar.prefix(), "0123456789ab");
        assert_eq!(bar.message(), "downloading");
    }
}
