//! A windowed maximum over a sliding window of "time" (BBR uses round trips) in constant
//! space: Kathleen Nichols' algorithm as Linux's `lib/win_minmax.c` keeps it, the best,
//! second-best and third-best samples of the window, each newer than the one before.

/// One sample: its time and value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Sample {
    t: u64,
    v: u64,
}

/// The running maximum of the samples of the last `win` time units.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WindowedMax {
    s: [Sample; 3],
}

impl WindowedMax {
    /// The maximum of the window (0 before any sample).
    #[inline]
    pub fn get(&self) -> u64 {
        self.s[0].v
    }

    /// Forgets everything but `v` at `t`.
    pub fn reset(&mut self, t: u64, v: u64) -> u64 {
        self.s = [Sample { t, v }; 3];
        v
    }

    /// Takes `v` measured at `t` (never earlier than the last sample) and returns the
    /// maximum of the window `(t - win, t]`.
    pub fn update(&mut self, win: u64, t: u64, v: u64) -> u64 {
        let val = Sample { t, v };
        if v >= self.s[0].v || t.saturating_sub(self.s[2].t) > win {
            // A new best, or nothing else left in the window.
            return self.reset(t, v);
        }
        if v >= self.s[1].v {
            self.s[2] = val;
            self.s[1] = val;
        } else if v >= self.s[2].v {
            self.s[2] = val;
        }
        self.subwin_update(win, val)
    }

    /// Ages the best samples out as the window passes them, and keeps the second and
    /// third best spread over the window's quarters and halves.
    fn subwin_update(&mut self, win: u64, val: Sample) -> u64 {
        let dt = val.t.saturating_sub(self.s[0].t);
        if dt > win {
            // The best sample is out of the window: the second takes over, then maybe
            // the third.
            self.s[0] = self.s[1];
            self.s[1] = self.s[2];
            self.s[2] = val;
            if val.t.saturating_sub(self.s[0].t) > win {
                self.s[0] = self.s[1];
                self.s[1] = self.s[2];
                self.s[2] = val;
            }
        } else if self.s[1].t == self.s[0].t && dt > win / 4 {
            // A quarter of the window passed without a second-best: take this one.
            self.s[2] = val;
            self.s[1] = val;
        } else if self.s[2].t == self.s[1].t && dt > win / 2 {
            // Half of it without a third-best.
            self.s[2] = val;
        }
        self.s[0].v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_maximum_of_the_window_and_ages_it_out() {
        let mut m = WindowedMax::default();
        assert_eq!(m.update(10, 0, 100), 100);
        // Lower samples do not replace the maximum while it is in the window.
        for t in 1..=10 {
            assert_eq!(m.update(10, t, 50 + t), 100, "round {t}");
        }
        // At round 11 the 100 sample is 11 rounds old: the best of the rest is left.
        let best_rest = m.update(10, 11, 40);
        assert!(
            (55..=60).contains(&best_rest),
            "the second best of the window takes over: {best_rest}"
        );
        // A new best wins at once.
        assert_eq!(m.update(10, 12, 500), 500);
        // Nothing for longer than the window: the next sample is the maximum.
        assert_eq!(m.update(10, 40, 7), 7);
    }

    #[test]
    fn a_falling_rate_is_followed_within_a_window() {
        // A bandwidth that halves at round 20: the filter holds the old value for at
        // most the window (10 rounds), then reports the new one.
        let mut m = WindowedMax::default();
        let mut seen = Vec::new();
        for t in 0..40u64 {
            let v = if t < 20 { 1000 } else { 500 };
            seen.push(m.update(10, t, v));
        }
        assert!(seen[..20].iter().all(|&v| v == 1000));
        assert_eq!(seen[29], 1000, "still inside the window");
        assert!(seen[31..].iter().all(|&v| v == 500), "{seen:?}");
    }
}
