//! The CPU time a server spends, from `/proc` (Linux): the process and every descendant
//! (nginx's workers, Varnish's child), so that the report can give each target's CPU per
//! request, a figure that a busy machine skews less than its requests per second.

/// Clock ticks per second of `/proc/PID/stat`'s times (`USER_HZ`, 100 on Linux).
const TICKS_PER_SECOND: f64 = 100.0;

/// The CPU time (user and system, in ms) used so far by `root` and its live descendants;
/// `None` when `/proc` cannot tell (not Linux, or `root` is gone).
pub(crate) fn cpu_ms(root: u32) -> Option<f64> {
    let processes: Vec<(u32, u32, u64)> = std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .filter_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            let (ppid, ticks) = parse_stat(&stat)?;
            Some((pid, ppid, ticks))
        })
        .collect();
    let ticks = descendants_ticks(&processes, root)?;
    Some(ticks as f64 * 1000.0 / TICKS_PER_SECOND)
}

/// The first process whose command line contains every one of `needles`.
pub(crate) fn find(needles: &[&str]) -> Option<u32> {
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .filter_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            needles
                .iter()
                .all(|needle| cmdline.contains(needle))
                .then_some(pid)
        })
        .min()
}

/// `(parent pid, utime + stime in ticks)` from a `/proc/PID/stat` line. The command name
/// (in parentheses) may hold spaces and parentheses: the fields are counted after the
/// last `)`.
pub(crate) fn parse_stat(stat: &str) -> Option<(u32, u64)> {
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state (3), ppid (4), ..., utime (14), stime (15).
    let ppid = fields.get(1)?.parse().ok()?;
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((ppid, utime + stime))
}

/// The ticks of `root` and of every process below it in `(pid, ppid, ticks)`.
fn descendants_ticks(processes: &[(u32, u32, u64)], root: u32) -> Option<u64> {
    let mut total = processes.iter().find(|(pid, ..)| *pid == root)?.2;
    let mut frontier = vec![root];
    while let Some(parent) = frontier.pop() {
        for (pid, ppid, ticks) in processes {
            if *ppid == parent && *pid != root {
                total += ticks;
                frontier.push(*pid);
            }
        }
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_parent_and_the_times_after_the_name() {
        let stat = "4242 (nginx: worker (x)) S 4241 4241 4241 0 -1 4194624 700 0 0 0 123 45 0 0 20 0 1 0 999 1000 200";
        assert_eq!(parse_stat(stat), Some((4241, 168)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn sums_a_process_tree() {
        let processes = [
            (1, 0, 5),
            (10, 1, 100),
            (11, 10, 20),
            (12, 10, 3),
            (20, 1, 7),
        ];
        assert_eq!(descendants_ticks(&processes, 10), Some(123));
        assert_eq!(descendants_ticks(&processes, 20), Some(7));
        assert_eq!(descendants_ticks(&processes, 99), None);
    }

    #[test]
    fn this_process_has_used_some_cpu() {
        // The kernel counts CPU time in ticks (10 ms), sampled: spin until one is counted
        // (a fixed amount of work was sometimes done within a tick and read as 0).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let mut x = 0u64;
        let used = loop {
            for i in 0..1_000_000u64 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
            }
            let used = cpu_ms(std::process::id());
            if used.is_none_or(|ms| ms > 0.0) || std::time::Instant::now() > deadline {
                break used;
            }
        };
        assert!(used.is_some_and(|ms| ms > 0.0), "{used:?}");
        assert_eq!(find(&["no-such-command-line-ever-xyz"]), None);
    }
}
