//! The restart policy, and docker's back-off between restarts.
//!
//! `--restart no` (the default) never restarts; `always` restarts whatever
//! the exit code; `unless-stopped` too, except after the user stopped the
//! container; `on-failure[:N]` restarts on a non-zero exit code, at most N
//! times. A container the user stopped (`stop`, `kill`, `rm -f`) is never
//! restarted, whatever its policy, until it is started again.
//!
//! A container that keeps failing must not be restarted in a tight loop.
//! docker waits 100 ms before the first restart and doubles the wait each
//! time, up to a minute; a container that ran for 10 seconds or more
//! counts as healthy again, and the wait starts over at 100 ms.

use std::time::Duration;

use crate::engine::record::RestartPolicy;

/// The first wait.
pub const FIRST_DELAY: Duration = Duration::from_millis(100);
/// The longest wait.
pub const MAX_DELAY: Duration = Duration::from_secs(60);
/// A run at least this long resets the back-off.
pub const HEALTHY_RUN: Duration = Duration::from_secs(10);

/// Parse `--restart`: `no`, `always`, `unless-stopped`, `on-failure[:N]`,
/// with docker's messages.
pub fn parse_policy(text: &str) -> Result<RestartPolicy, String> {
    let (name, count) = match text.split_once(':') {
        Some((name, count)) => (name, Some(count)),
        None => (text, None),
    };
    let policy = |name: &str, max: i64| RestartPolicy {
        name: name.to_string(),
        maximum_retry_count: max,
    };
    match (name, count) {
        ("" | "no", None) => Ok(policy("no", 0)),
        ("always" | "unless-stopped", None) => Ok(policy(name, 0)),
        ("always" | "unless-stopped" | "no", Some(_)) => Err(format!(
            "invalid restart policy '{text}': maximum retry count can only be used with 'on-failure'"
        )),
        ("on-failure", None) => Ok(policy(name, 0)),
        ("on-failure", Some(count)) => match count.parse::<i64>() {
            Ok(n) if n >= 0 => Ok(policy(name, n)),
            Ok(_) => {
                Err("invalid restart policy: maximum retry count cannot be negative".to_string())
            }
            Err(_) => Err(
                "invalid restart policy format: maximum retry count must be an integer".to_string(),
            ),
        },
        _ => Err(format!("invalid restart policy '{name}'")),
    }
}

/// The back-off state of one monitor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Backoff {
    delay: Option<Duration>,
}

impl Backoff {
    /// The container exited after running for `ran`: how long to wait
    /// before the next restart.
    pub fn next_delay(&mut self, ran: Duration) -> Duration {
        if ran >= HEALTHY_RUN {
            self.delay = None;
        }
        let delay = match self.delay {
            None => FIRST_DELAY,
            Some(d) => (d * 2).min(MAX_DELAY),
        };
        self.delay = Some(delay);
        delay
    }
}

/// Whether a container that exited with `exit_code`, restarted
/// `restart_count` times so far, is restarted.
pub fn should_restart(
    policy: &RestartPolicy,
    exit_code: i32,
    restart_count: i64,
    manually_stopped: bool,
) -> bool {
    if manually_stopped {
        return false;
    }
    match policy.name.as_str() {
        "always" | "unless-stopped" => true,
        "on-failure" => {
            exit_code != 0
                && (policy.maximum_retry_count == 0 || restart_count < policy.maximum_retry_count)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_parse_as_dockers() {
        assert_eq!(parse_policy("no").unwrap().name, "no");
        assert_eq!(parse_policy("on-failure:3").unwrap().maximum_retry_count, 3);
        assert_eq!(
            parse_policy("unless-stopped").unwrap().name,
            "unless-stopped"
        );
        assert_eq!(
            parse_policy("sometimes").unwrap_err(),
            "invalid restart policy 'sometimes'"
        );
        assert!(
            parse_policy("always:3")
                .unwrap_err()
                .contains("only be used with 'on-failure'")
        );
        assert!(parse_policy("on-failure:x").is_err());
        assert!(parse_policy("on-failure:-1").is_err());
    }

    #[test]
    fn who_restarts() {
        let p = |t: &str| parse_policy(t).unwrap();
        assert!(!should_restart(&p("no"), 1, 0, false));
        assert!(should_restart(&p("always"), 0, 99, false));
        assert!(!should_restart(&p("always"), 0, 0, true));
        assert!(!should_restart(&p("unless-stopped"), 1, 0, true));
        assert!(should_restart(&p("on-failure"), 1, 1000, false));
        assert!(!should_restart(&p("on-failure"), 0, 0, false));
        assert!(should_restart(&p("on-failure:2"), 1, 1, false));
        assert!(!should_restart(&p("on-failure:2"), 1, 2, false));
    }

    #[test]
    fn the_back_off_doubles_to_a_minute_and_resets_after_a_healthy_run() {
        let mut b = Backoff::default();
        let quick = Duration::from_millis(5);
        let delays: Vec<u128> = (0..12).map(|_| b.next_delay(quick).as_millis()).collect();
        assert_eq!(
            delays,
            [
                100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600, 51200, 60000, 60000
            ]
        );
        assert_eq!(b.next_delay(Duration::from_secs(10)), FIRST_DELAY);
        assert_eq!(b.next_delay(quick), Duration::from_millis(200));
    }
}
