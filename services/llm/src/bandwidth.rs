//! The machine's memory read bandwidth, for the decode bound `rudder bench generate` reports (a
//! decode step streams every weight once, so bandwidth / bytes per token bounds its speed). Here,
//! not in the bench, because this crate is built optimised in every profile: an unoptimised read
//! loop measures the loop, not the memory.

use std::time::Instant;

/// Bytes per second: a 512 MiB buffer summed by one thread per core, each over its own share and
/// prefetching ahead (best of 5), the way the decode step's products stream their weights.
pub fn memory_read_bandwidth() -> f64 {
    let words: Vec<u64> = (0..(64u64 << 20)).collect();
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let share = words.len().div_ceil(threads);
    let mut best = f64::MAX;
    let mut checksum = 0u64;
    for _ in 0..5 {
        let started = Instant::now();
        checksum ^= std::thread::scope(|scope| {
            let sums: Vec<_> =
                words.chunks(share).map(|part| scope.spawn(move || sum_streaming(part))).collect();
            sums.into_iter().map(|sum| sum.join().unwrap_or(0)).fold(0u64, u64::wrapping_add)
        });
        best = best.min(started.elapsed().as_secs_f64());
    }
    // The sums are used, so the reads cannot be optimised away.
    std::hint::black_box(checksum);
    (words.len() * 8) as f64 / best
}

/// The sum of `words`, each cache line's sum issued with a prefetch of the line 8 KiB ahead (without
/// it a core reads at well under the memory's speed here: the hardware prefetcher alone keeps too
/// few lines in flight).
fn sum_streaming(words: &[u64]) -> u64 {
    const LINE: usize = 8;
    const AHEAD: usize = 8192 / 8;
    let mut sums = [0u64; LINE];
    for (i, line) in words.chunks(LINE).enumerate() {
        crate::q8::prefetch(words.as_ptr().wrapping_add(i * LINE + AHEAD));
        for (sum, w) in sums.iter_mut().zip(line) {
            *sum = sum.wrapping_add(*w);
        }
    }
    sums.iter().fold(0u64, |total, s| total.wrapping_add(*s))
}
