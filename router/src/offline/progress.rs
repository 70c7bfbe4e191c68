//! Progress bars for the offline tools on stderr. On a terminal they are indicatif bars; when
//! stderr is redirected (CI logs, `2>file`) the bar's line is printed plainly every few seconds
//! instead of not at all, so a long first run (embedding a data set) does not look hung.

use std::io::{self, IsTerminal, Write as _};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle, TermLike};

/// How often a redirected progress bar prints its line.
const PLAIN_EVERY: Duration = Duration::from_secs(10);

/// A progress bar on stderr for `len` steps labelled `what` (hidden unless `enabled`).
pub fn progress_bar(enabled: bool, len: usize, what: &str) -> ProgressBar {
    if !enabled {
        return ProgressBar::hidden();
    }
    let bar = if io::stderr().is_terminal() {
        ProgressBar::new(len as u64)
    } else {
        let target = ProgressDrawTarget::term_like_with_hz(Box::new(PlainLines::default()), 1);
        ProgressBar::with_draw_target(Some(len as u64), target)
    };
    if let Ok(style) =
        ProgressStyle::with_template("{msg:>11} [{bar:40}] {pos}/{len} ({per_sec}, {eta} left)")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_owned());
    bar
}

/// A "terminal" that writes each non-empty line to stderr, at most every [`PLAIN_EVERY`], and
/// ignores cursor movement.
#[derive(Debug, Default)]
struct PlainLines {
    last: Mutex<Option<Instant>>,
}

impl TermLike for PlainLines {
    fn width(&self) -> u16 {
        100
    }

    fn move_cursor_up(&self, _n: usize) -> io::Result<()> {
        Ok(())
    }

    fn move_cursor_down(&self, _n: usize) -> io::Result<()> {
        Ok(())
    }

    fn move_cursor_right(&self, _n: usize) -> io::Result<()> {
        Ok(())
    }

    fn move_cursor_left(&self, _n: usize) -> io::Result<()> {
        Ok(())
    }

    fn write_line(&self, s: &str) -> io::Result<()> {
        self.write_str(s)
    }

    fn write_str(&self, s: &str) -> io::Result<()> {
        if s.trim().is_empty() {
            return Ok(());
        }
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        if last.is_some_and(|at| at.elapsed() < PLAIN_EVERY) {
            return Ok(());
        }
        *last = Some(Instant::now());
        writeln!(io::stderr(), "{}", s.trim_end())
    }

    fn clear_line(&self) -> io::Result<()> {
        Ok(())
    }

    fn flush(&self) -> io::Result<()> {
        io::stderr().flush()
    }
}
