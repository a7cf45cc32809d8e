//! The conditions a benchmark ran under, so that a stored comparison can tell
//! a change of the code from a change of the machine.
//!
//! Two kinds: what the operating system says before and after sampling
//! ([`Conditions`]: the 1-minute load average from `/proc/loadavg`, the mean CPU
//! frequency from cpufreq or `/proc/cpuinfo`, the CPUs other processes and the
//! hypervisor took during sampling from `/proc/stat`, each `None` where
//! unreadable),
//! and what the sample series itself shows ([`Series`]: its drift from first to
//! last third, its lag-1 autocorrelation, its min-to-median spread). The series
//! statistics are computed from the samples, so reports written before they
//! existed get them too.

use serde::{Deserialize, Serialize};

use crate::stats::quantile;

/// The machine before and after one benchmark's sampling.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Conditions {
    /// 1-minute load average when sampling started.
    pub load_before: Option<f64>,
    /// 1-minute load average when sampling ended.
    pub load_after: Option<f64>,
    /// Mean CPU frequency in MHz when sampling started.
    pub cpu_mhz_before: Option<f64>,
    /// Mean CPU frequency in MHz when sampling ended.
    pub cpu_mhz_after: Option<f64>,
    /// The share of the sampled calls' wall time during which the plugin's
    /// thread was not on a CPU (1 − Σ thread CPU time / Σ wall time): the
    /// hand-off between threads, and waiting for a CPU on a busy machine.
    /// Unlike the load average it covers exactly the sampled calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub off_cpu_share: Option<f64>,
    /// CPUs busy with anything but this process during sampling (other
    /// processes, interrupts, and time the hypervisor gave to other machines),
    /// from `/proc/stat` and `/proc/self/stat`: 1.3 when other jobs kept 1.3 CPUs
    /// busy on average. Unlike the load average (a minute's moving mean) it
    /// covers exactly the sampling, so a load that came and went between two
    /// half-second runs shows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub other_cpu: Option<f64>,
}

/// The readings taken when sampling started; [`ConditionsProbe::finish`] completes them.
#[derive(Clone, Copy, Debug)]
pub struct ConditionsProbe {
    load: Option<f64>,
    cpu_mhz: Option<f64>,
    ticks: Option<Ticks>,
}

impl Conditions {
    /// Reads the machine's state now, before sampling.
    pub fn start() -> ConditionsProbe {
        ConditionsProbe { load: load_average(), cpu_mhz: cpu_mhz(), ticks: Ticks::now() }
    }

    /// The largest change of the load average this and `other` saw, before,
    /// after and between them; `None` when neither was read.
    pub fn load_range(&self, other: &Conditions) -> Option<(f64, f64)> {
        let loads: Vec<f64> =
            [self.load_before, self.load_after, other.load_before, other.load_after].into_iter().flatten().collect();
        let min = loads.iter().copied().reduce(f64::min)?;
        let max = loads.iter().copied().reduce(f64::max)?;
        Some((min, max))
    }
}

impl ConditionsProbe {
    /// Reads the machine's state again, after sampling.
    pub fn finish(self) -> Conditions {
        Conditions {
            load_before: self.load,
            load_after: load_average(),
            cpu_mhz_before: self.cpu_mhz,
            cpu_mhz_after: cpu_mhz(),
            off_cpu_share: None,
            other_cpu: self.ticks.zip(Ticks::now()).and_then(|(before, after)| after.other_cpu_since(&before)),
        }
    }
}

/// The kernel's CPU time counters, in clock ticks: the whole machine's and
/// this process's.
#[derive(Clone, Copy, Debug)]
struct Ticks {
    /// Every CPU's time, idle included (the `cpu` line of `/proc/stat`).
    total: u64,
    /// Of which busy: user, nice, system, irq, softirq and steal (time the
    /// hypervisor ran something else on this machine's CPU).
    busy: u64,
    /// This process's user and system time (`/proc/self/stat`).
    own: u64,
    /// The `cpuN` lines.
    cpus: u32,
}

impl Ticks {
    fn now() -> Option<Ticks> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let all = stat.lines().next()?.strip_prefix("cpu ")?;
        let fields: Vec<u64> = all.split_whitespace().map(str::parse).collect::<Result<_, _>>().ok()?;
        // user nice system idle iowait irq softirq steal (guest time is in user).
        let field = |i: usize| fields.get(i).copied().unwrap_or(0);
        let total = (0..8).map(field).sum();
        let busy = [0, 1, 2, 5, 6, 7].into_iter().map(field).sum();
        let cpus = stat
            .lines()
            .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
            .count();
        // The command name may hold spaces and parentheses: fields count from the last `)`.
        let own_stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        let after_name: Vec<&str> = own_stat.rsplit_once(')')?.1.split_whitespace().collect();
        // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
        let own = after_name.get(11)?.parse::<u64>().ok()? + after_name.get(12)?.parse::<u64>().ok()?;
        Some(Ticks { total, busy, own, cpus: u32::try_from(cpus).ok()? })
    }

    /// CPUs busy with anything but this process since `before`; `None` when
    /// no time was counted.
    fn other_cpu_since(&self, before: &Ticks) -> Option<f64> {
        let total = self.total.checked_sub(before.total).filter(|&t| t > 0)?;
        let busy = self.busy.saturating_sub(before.busy);
        let own = self.own.saturating_sub(before.own);
        Some(busy.saturating_sub(own) as f64 / total as f64 * f64::from(self.cpus))
    }
}

/// The 1-minute load average (Linux: `/proc/loadavg`).
fn load_average() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    text.split_whitespace().next()?.parse().ok()
}

/// The mean current frequency of the CPUs in MHz: cpufreq's `scaling_cur_freq`
/// (kHz) where the kernel has it, else `/proc/cpuinfo`'s `cpu MHz` lines.
fn cpu_mhz() -> Option<f64> {
    let mut khz = Vec::new();
    for cpu in 0.. {
        let path = format!("/sys/devices/system/cpu/cpu{cpu}/cpufreq/scaling_cur_freq");
        match std::fs::read_to_string(path) {
            Ok(text) => khz.extend(text.trim().parse::<f64>().ok()),
            Err(_) => break,
        }
    }
    if !khz.is_empty() {
        return Some(khz.iter().sum::<f64>() / khz.len() as f64 / 1000.0);
    }
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let mhz: Vec<f64> = info
        .lines()
        .filter(|l| l.starts_with("cpu MHz"))
        .filter_map(|l| l.split_once(':')?.1.trim().parse().ok())
        .collect();
    (!mhz.is_empty()).then(|| mhz.iter().sum::<f64>() / mhz.len() as f64)
}

/// What a sample series, in the order measured, says about its own stability.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Series {
    /// Median of the last third over median of the first third, minus 1:
    /// +0.08 when the calls got 8 % slower as the run went on.
    pub drift: f64,
    /// Lag-1 autocorrelation of the log durations: 0 for independent calls,
    /// near 1 when slow calls come in runs.
    pub lag1_autocorrelation: f64,
    /// Median over minimum, minus 1: how far typical calls sit above the fastest.
    pub spread: f64,
}

impl Series {
    /// The statistics of `samples_ns` (in the order measured); `None` for fewer than 3 samples.
    pub fn of(samples_ns: &[u64]) -> Option<Series> {
        let n = samples_ns.len();
        if n < 3 {
            return None;
        }
        let sorted_median = |part: &[u64]| {
            let mut v: Vec<f64> = part.iter().map(|&x| x as f64).collect();
            v.sort_by(f64::total_cmp);
            quantile(&v, 0.5)
        };
        let third = n / 3;
        let drift = sorted_median(&samples_ns[n - third..]) / sorted_median(&samples_ns[..third]) - 1.0;
        let logs: Vec<f64> = samples_ns.iter().map(|&x| (x.max(1) as f64).ln()).collect();
        let mean = logs.iter().sum::<f64>() / n as f64;
        let variance: f64 = logs.iter().map(|x| (x - mean).powi(2)).sum();
        let covariance: f64 = logs.windows(2).map(|w| (w[0] - mean) * (w[1] - mean)).sum();
        let lag1_autocorrelation = if variance > 0.0 { covariance / variance } else { 0.0 };
        let min = samples_ns.iter().copied().min().unwrap_or(1).max(1) as f64;
        let spread = sorted_median(samples_ns) / min - 1.0;
        Some(Series { drift, lag1_autocorrelation, spread })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_steady_series_has_no_drift_and_no_autocorrelation() {
        // Alternating around 1000: no drift, negative lag-1 correlation.
        let samples: Vec<u64> = (0..300).map(|i| if i % 2 == 0 { 990 } else { 1010 }).collect();
        let s = Series::of(&samples).unwrap();
        assert!(s.drift.abs() < 1e-9, "{s:?}");
        assert!(s.lag1_autocorrelation < -0.9, "{s:?}");
        assert!((s.spread - (1000.0 / 990.0 - 1.0)).abs() < 1e-9, "{s:?}");
    }

    #[test]
    fn a_drifting_series_says_so() {
        // 1000 ns rising to 1200 ns over the run.
        let samples: Vec<u64> = (0..300).map(|i| 1000 + i * 200 / 300).collect();
        let s = Series::of(&samples).unwrap();
        assert!((0.12..0.15).contains(&s.drift), "{s:?}");
        assert!(s.lag1_autocorrelation > 0.95, "{s:?}");
        assert_eq!(Series::of(&[1, 2]), None);
    }

    #[test]
    fn load_range_covers_both_runs() {
        let a = Conditions { load_before: Some(0.2), load_after: Some(0.4), ..Conditions::default() };
        let b = Conditions { load_before: Some(3.9), load_after: None, ..Conditions::default() };
        assert_eq!(a.load_range(&b), Some((0.2, 3.9)));
        assert_eq!(Conditions::default().load_range(&Conditions::default()), None);
        let probe = Conditions::start().finish();
        if cfg!(target_os = "linux") {
            assert!(probe.load_before.is_some() && probe.load_after.is_some(), "{probe:?}");
        }
    }

    #[test]
    fn other_cpu_counts_busy_threads_of_other_processes_and_not_our_own() {
        if !cfg!(target_os = "linux") {
            return;
        }
        let spin = |millis: u64| {
            let until = std::time::Instant::now() + std::time::Duration::from_millis(millis);
            let mut x = 1u64;
            while std::time::Instant::now() < until {
                x = std::hint::black_box(x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1));
            }
        };
        let cpus = std::thread::available_parallelism().map_or(1, usize::from) as f64;
        // A busy shell adds about one CPU only while one is free: on a
        // machine other jobs keep saturated it adds less (measured 0.55 with
        // two busy loops on two CPUs). So the pair is measured up to five
        // times, for a moment when a CPU is free; an accounting that counts
        // our own thread, or misses other processes, fails every time.
        let mut seen = Vec::new();
        for _ in 0..5 {
            // This process keeping one CPU busy is not "other".
            let probe = Conditions::start();
            spin(300);
            let ours = probe.finish().other_cpu.unwrap();
            // Another process keeping one CPU busy is.
            let mut busy = std::process::Command::new("sh").args(["-c", "while :; do :; done"]).spawn().unwrap();
            std::thread::sleep(std::time::Duration::from_millis(50));
            let probe = Conditions::start();
            std::thread::sleep(std::time::Duration::from_millis(300));
            let theirs = probe.finish().other_cpu.unwrap();
            let _ = busy.kill();
            let _ = busy.wait();
            if theirs - ours > 0.6 && ours < 0.5 * cpus {
                return;
            }
            seen.push(format!("ours {ours:.2}, with a busy shell {theirs:.2}"));
        }
        panic!("of {cpus} CPUs, the busy shell never showed (or ours did): {}", seen.join("; "));
    }
}
