//! Which CPUs this process may run shards on: online CPUs that are also in the
//! affinity mask it was started with (so `taskset -c 2,3 tandem` means two shards on
//! cores 2 and 3, and a container's cpuset is respected).

use super::value::parse_cpu_list;

/// Allowed CPUs in ascending order; never empty (falls back to CPU 0 if the kernel
/// will not say, because a broker with zero shards cannot run at all).
pub fn allowed_cpus() -> Vec<usize> {
    let mut cpus = affinity().unwrap_or_else(|| {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        (0..n).collect()
    });
    // The affinity mask normally holds only online CPUs already; intersecting guards
    // against masks inherited from before a CPU went offline.
    if let Some(online) = online() {
        let narrowed: Vec<usize> = cpus
            .iter()
            .copied()
            .filter(|c| online.contains(c))
            .collect();
        if !narrowed.is_empty() {
            cpus = narrowed;
        }
    }
    if cpus.is_empty() {
        cpus.push(0);
    }
    cpus
}

fn affinity() -> Option<Vec<usize>> {
    // SAFETY: cpu_set_t is a plain bit array, valid when zeroed; the kernel writes at
    // most size_of::<cpu_set_t>() bytes into it.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let rc =
        unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if rc != 0 {
        return None;
    }
    let max = usize::try_from(libc::CPU_SETSIZE).unwrap_or(1024);
    // SAFETY: `cpu` < CPU_SETSIZE, the bit capacity of `set`.
    let cpus: Vec<usize> = (0..max)
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .collect();
    (!cpus.is_empty()).then_some(cpus)
}

fn online() -> Option<Vec<usize>> {
    let text = std::fs::read_to_string("/sys/devices/system/cpu/online").ok()?;
    parse_cpu_list(text.trim()).ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn some_cpu_is_allowed() {
        let cpus = super::allowed_cpus();
        assert!(!cpus.is_empty());
        assert!(cpus.windows(2).all(|w| w[0] < w[1]), "{cpus:?}");
    }
}
