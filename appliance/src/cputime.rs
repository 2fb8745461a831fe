//! On-CPU time of the worker threads, read from the kernel (`/proc/self/task`), so the
//! management plane can report how busy each worker's core is without the worker
//! measuring anything itself.

use std::time::Duration;

/// On-CPU time of the thread named `name` in this process, or `None` when no thread has
/// that name (the worker has not started, or `/proc` is not mounted).
///
/// The kernel's scheduler statistics (`schedstat`, nanoseconds) are preferred; without
/// them the tick counts of `stat` (user + system, in USER_HZ = 100 ticks per second)
/// serve.
pub fn thread_cpu_time(name: &str) -> Option<Duration> {
    let tasks = std::fs::read_dir("/proc/self/task").ok()?;
    for task in tasks.flatten() {
        let dir = task.path();
        let Ok(comm) = std::fs::read_to_string(dir.join("comm")) else {
            continue;
        };
        if comm.trim_end() != name {
            continue;
        }
        if let Some(ns) = std::fs::read_to_string(dir.join("schedstat"))
            .ok()
            .as_deref()
            .and_then(parse_schedstat)
        {
            return Some(Duration::from_nanos(ns));
        }
        return std::fs::read_to_string(dir.join("stat"))
            .ok()
            .as_deref()
            .and_then(parse_stat_ticks)
            .map(|t| Duration::from_millis(t * 10));
    }
    None
}

/// The first field of `schedstat`: nanoseconds spent on a CPU.
fn parse_schedstat(text: &str) -> Option<u64> {
    text.split_whitespace().next()?.parse().ok()
}

/// utime + stime (fields 14 and 15) of a `stat` line; the command name in parentheses
/// may hold spaces, so fields are counted after its closing parenthesis.
fn parse_stat_ticks(text: &str) -> Option<u64> {
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name, field 3 (state) is index 0, so field 14 is index 11.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_schedstat_and_stat() {
        assert_eq!(parse_schedstat("274601963 332953280 77\n"), Some(274601963));
        assert_eq!(parse_schedstat(""), None);
        let stat = "4242 (rouge worker) R 1 2 3 4 5 6 7 8 9 10 26 3 0 0 20 0 1 0";
        assert_eq!(parse_stat_ticks(stat), Some(29));
        assert_eq!(parse_stat_ticks("garbage"), None);
    }

    #[test]
    fn finds_a_named_thread_of_this_process() {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let h = std::thread::Builder::new()
            .name("rouge-cpu-probe".into())
            .spawn(move || {
                let _ = rx.recv();
            })
            .unwrap();
        // The thread exists once spawn returns; its name is set before it runs.
        let mut found = None;
        for _ in 0..100 {
            found = thread_cpu_time("rouge-cpu-probe");
            if found.is_some() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(found.is_some(), "thread not found in /proc/self/task");
        assert_eq!(thread_cpu_time("no-such-thread-name"), None);
        tx.send(()).unwrap();
        h.join().unwrap();
    }
}
