//! Choosing a parker's policy: the governor's parameters, whether to poll at all, a latency
//! limit, and what the governor learns from.

use std::sync::OnceLock;
use std::thread;
use std::time::Duration;

use haltpoll::{
    AnyGovernor, BlockTime, Governor, GovernorParams, IdleState, LATENCY_ANY, LatencyReq, ParamError, Params,
    Predictive, ValidPredictiveParams,
};

use crate::Parker;
use crate::parker::Config;

/// The governor's defaults for threads, measured on a 2-vCPU KVM guest (the crate docs,
/// "Choosing the defaults", give the numbers behind them): a 200 us ceiling, windows growing
/// x2 from 25 us, shrinking /2 with Linux 6.9's floor.
pub const DEFAULT_PARAMS: Params =
    Params { guest_halt_poll_ns: 200_000, grow_start: 25_000, block_time: BlockTime::PollAndHalt, ..Params::DEFAULT };

/// Whether a parker polls at all.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Polling {
    /// Poll unless this process may run on only one CPU ([`polling_can_help`]): there the
    /// unparker cannot run while the parker spins, so polling only delays it. The analogue of
    /// the cpuidle-haltpoll driver refusing to load where it cannot help.
    #[default]
    Auto,
    /// Poll even on one CPU (the driver's `force`).
    Force,
    /// Never poll: block at once, as `std::thread::park` does (a baseline).
    Off,
}

/// Whether polling can help this process: false if it may run on only one CPU (its affinity
/// mask or cgroup CPU quota allows one, as `std::thread::available_parallelism` reports).
/// Read once per process; unknown counts as "can help".
pub fn polling_can_help() -> bool {
    static CAN_HELP: OnceLock<bool> = OnceLock::new();
    *CAN_HELP.get_or_init(|| thread::available_parallelism().map_or(true, |n| n.get() > 1))
}

/// Builds a [`Parker`] with chosen parameters.
///
/// ```
/// use std::time::Duration;
/// use haltpoll::Params;
/// use haltpoll_park::{Parker, Polling, DEFAULT_PARAMS};
///
/// // A larger ceiling for a waiter whose wakers take up to 1 ms.
/// let parker = Parker::builder()
///     .params(Params { guest_halt_poll_ns: 1_000_000, ..DEFAULT_PARAMS })
///     .build()?;
/// // Poll only, never sleep (a latency limit of 0), even on one CPU.
/// let spinner = Parker::builder().latency_limit(Duration::ZERO).polling(Polling::Force).build()?;
/// # let _ = (parker, spinner);
/// # Ok::<(), haltpoll::ParamError>(())
/// ```
#[derive(Clone, Copy, Debug)]
#[must_use = "a builder does nothing until .build()"]
pub struct Builder {
    params: Params,
    /// The predictive governor's parameters when it is chosen; `None`: Linux's, with `params`.
    predictive: Option<ValidPredictiveParams>,
    polling: Polling,
    latency_req: LatencyReq,
    start_polling: bool,
    count_unparks: bool,
}

impl Builder {
    /// The defaults: [`DEFAULT_PARAMS`], [`Polling::Auto`], no latency limit, a window
    /// starting at 0.
    pub fn new() -> Builder {
        Builder {
            params: DEFAULT_PARAMS,
            predictive: None,
            polling: Polling::Auto,
            latency_req: LATENCY_ANY,
            start_polling: false,
            count_unparks: false,
        }
    }

    /// Which governor decides how long a park polls, with its parameters: Linux's (the
    /// default, with [`DEFAULT_PARAMS`]; the same as [`params`](Self::params)) or the
    /// predictive one, which polls within a CPU budget and may sleep on a timer first, then
    /// poll where it predicts the unpark (the crate docs, "Choosing the governor", say why
    /// Linux's is the default).
    ///
    /// ```
    /// use haltpoll::{GovernorParams, PredictiveParams};
    /// use haltpoll_park::Parker;
    /// let budget = PredictiveParams { poll_budget_ppm: 100_000, ..PredictiveParams::DEFAULT }; // 10%
    /// let parker = Parker::builder().governor(GovernorParams::Predictive(budget.validate()?)).build()?;
    /// parker.unparker().unpark();
    /// parker.park();
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn governor(mut self, governor: GovernorParams) -> Builder {
        match governor {
            GovernorParams::Linux(params) => {
                self.params = params.into_inner();
                self.predictive = None;
            }
            GovernorParams::Predictive(params) => self.predictive = Some(params),
        }
        self
    }

    /// Linux's governor's parameters (checked by [`build`](Self::build)); they are used when
    /// Linux's governor is the one chosen (the default, see [`governor`](Self::governor)).
    pub fn params(mut self, params: Params) -> Builder {
        self.params = params;
        self
    }

    /// What the governor counts as block time (sets `block_time` of the parameters given so
    /// far: call it after [`params`](Self::params)). [`DEFAULT_PARAMS`] count the poll too.
    pub fn block_time(mut self, block_time: BlockTime) -> Builder {
        self.params.block_time = block_time;
        self
    }

    /// Whether to poll at all.
    pub fn polling(mut self, polling: Polling) -> Builder {
        self.polling = polling;
        self
    }

    /// The longest a wakeup may wait for the thread to leave a futex sleep, as a latency
    /// requirement for the governor. Below 1 us (the exit latency of the core's HALT state),
    /// in particular 0, the parker polls only and never sleeps, until the token or its
    /// deadline. Default: no limit.
    pub fn latency_limit(mut self, limit: Duration) -> Builder {
        self.latency_req = u64::try_from(limit.as_nanos()).unwrap_or(u64::MAX);
        self
    }

    /// Start with the window at `grow_start` instead of 0, as if the first wait had been a
    /// short block: the first parks poll at once. Linux's governor only (the predictive one
    /// polls only once it has earned budget).
    pub fn start_polling(mut self, yes: bool) -> Builder {
        self.start_polling = yes;
        self
    }

    /// Count every call to [`Unparker::unpark`](crate::Unparker::unpark) in
    /// [`Stats::unparks`](crate::Stats::unparks). Off by default: it is a second atomic RMW in
    /// every unpark, and an unpark that finds the parker running otherwise costs one.
    pub fn count_unparks(mut self, yes: bool) -> Builder {
        self.count_unparks = yes;
        self
    }

    /// The parker, or why the parameters cannot work.
    pub fn build(self) -> Result<Parker, ParamError> {
        let params = self.params.validate()?;
        let polling = match self.polling {
            Polling::Auto => polling_can_help(),
            Polling::Force => true,
            Polling::Off => false,
        };
        let governor = match self.predictive {
            Some(params) => AnyGovernor::Predictive(Predictive::new(params)),
            None => {
                let mut governor = Governor::new(params);
                if self.start_polling {
                    // A 1 ns block is inside (0, ceiling] for any ceiling >= 1: grows to grow_start.
                    let _ = governor.reflect(IdleState::Halt, 1, false);
                }
                AnyGovernor::Linux(governor)
            }
        };
        Ok(Parker::with(Config { polling, latency_req: self.latency_req, count_unparks: self.count_unparks }, governor))
    }
}

impl Default for Builder {
    fn default() -> Builder {
        Builder::new()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn invalid_params_are_refused() {
        let err = Builder::new().params(Params { grow_start: 0, ..DEFAULT_PARAMS }).build().unwrap_err();
        assert_eq!(err, ParamError::ZeroGrowStart);
    }

    #[test]
    fn start_polling_starts_at_grow_start() {
        let p = Builder::new().polling(Polling::Force).start_polling(true).build().unwrap();
        assert_eq!(p.poll_limit_ns(), DEFAULT_PARAMS.grow_start);
        let off = Params { guest_halt_poll_ns: 0, ..DEFAULT_PARAMS };
        let p = Builder::new().params(off).start_polling(true).build().unwrap();
        assert_eq!(p.poll_limit_ns(), 0, "a ceiling of 0 never polls");
    }

    #[test]
    fn polling_modes() {
        assert!(Builder::new().polling(Polling::Force).build().unwrap().polls());
        assert!(!Builder::new().polling(Polling::Off).build().unwrap().polls());
        assert_eq!(Builder::new().build().unwrap().polls(), polling_can_help());
    }

    #[test]
    fn polling_can_help_follows_the_cpu_count() {
        let cpus = thread::available_parallelism().map_or(2, |n| n.get());
        assert_eq!(polling_can_help(), cpus > 1);
    }

    #[test]
    fn huge_latency_limit_saturates() {
        let b = Builder::new().latency_limit(Duration::MAX);
        assert_eq!(b.latency_req, u64::MAX);
    }
}
