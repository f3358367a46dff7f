//! Progress reporting: the library never draws or prints; long operations send [`Event`]s
//! to an [`Observer`] the application supplies (the `dfd` binary turns them into
//! progress bars). Without one, events go nowhere.

use std::sync::Arc;

/// A stage of work that reports progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Stage {
    /// Building the few-shot training set (rotations, pseudo-anomalies).
    TrainingSet,
    /// The frozen backbone's features of every training sample.
    Features,
    /// Training the heads (one step per unit).
    Training,
    /// Scoring held-out samples to calibrate the threshold.
    Calibration,
    /// Loading a test set.
    TestSet,
}

impl Stage {
    /// A short lower-case name (`"training"`, …).
    pub fn name(self) -> &'static str {
        match self {
            Stage::TrainingSet => "building training set",
            Stage::Features => "backbone features",
            Stage::Training => "training",
            Stage::Calibration => "calibration",
            Stage::TestSet => "loading test set",
        }
    }
}

/// Something that happened during a long operation.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Event<'a> {
    /// A stage started with `total` units of work.
    Started {
        /// Which stage.
        stage: Stage,
        /// Units of work in the stage.
        total: u64,
    },
    /// `done` of the stage's units are finished.
    Advanced {
        /// Which stage.
        stage: Stage,
        /// Units finished so far.
        done: u64,
    },
    /// An epoch of training ended, with its mean loss terms (in the order of
    /// [`LOSS_TERMS`](crate::train::LOSS_TERMS)).
    Epoch {
        /// The epoch that ended (1-based).
        epoch: usize,
        /// Epochs planned.
        epochs: usize,
        /// Mean loss terms of the epoch.
        loss: &'a [f32],
    },
    /// A stage ended.
    Finished {
        /// Which stage.
        stage: Stage,
    },
    /// Something the user should know (for example that pseudo-anomalies use procedural
    /// textures).
    Note(&'a str),
}

/// Receives [`Event`]s. Any `Fn(&Event) + Send + Sync` closure is an observer.
pub trait Observer: Send + Sync {
    /// Called for each event, on the thread doing the work.
    fn event(&self, event: &Event<'_>);
}

impl<F: Fn(&Event<'_>) + Send + Sync> Observer for F {
    fn event(&self, event: &Event<'_>) {
        self(event)
    }
}

/// A cheap, cloneable handle to an optional observer; what long operations take.
#[derive(Clone, Default)]
pub struct Progress(Option<Arc<dyn Observer>>);

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Progress(observed)"
        } else {
            "Progress(silent)"
        })
    }
}

impl Progress {
    /// Events go nowhere.
    pub fn silent() -> Progress {
        Progress(None)
    }

    /// Events go to `observer`.
    pub fn to(observer: impl Observer + 'static) -> Progress {
        Progress(Some(Arc::new(observer)))
    }

    /// Events go to a shared observer.
    pub fn to_shared(observer: Arc<dyn Observer>) -> Progress {
        Progress(Some(observer))
    }

    /// Sends one event.
    pub fn emit(&self, event: Event<'_>) {
        if let Some(o) = &self.0 {
            o.event(&event);
        }
    }

    /// A counter for `stage` over `total` units: sends `Started` now, `Advanced` on each
    /// [`StageCounter::advance`] and `Finished` when dropped.
    pub fn stage(&self, stage: Stage, total: u64) -> StageCounter {
        self.emit(Event::Started { stage, total });
        StageCounter {
            progress: self.clone(),
            stage,
            done: std::sync::atomic::AtomicU64::new(0),
        }
    }
}

/// Progress through one stage (see [`Progress::stage`]); usable from several threads.
#[derive(Debug)]
pub struct StageCounter {
    progress: Progress,
    stage: Stage,
    done: std::sync::atomic::AtomicU64,
}

impl StageCounter {
    /// `n` more units are finished.
    pub fn advance(&self, n: u64) {
        let done = self.done.fetch_add(n, std::sync::atomic::Ordering::Relaxed) + n;
        self.progress.emit(Event::Advanced {
            stage: self.stage,
            done,
        });
    }
}

impl Drop for StageCounter {
    fn drop(&mut self) {
        self.progress.emit(Event::Finished { stage: self.stage });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn a_stage_reports_start_advances_and_end_in_order() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let progress = Progress::to(move |e: &Event<'_>| {
            log.lock().unwrap().push(format!("{e:?}"));
        });
        {
            let s = progress.stage(Stage::Features, 3);
            s.advance(1);
            s.advance(2);
            progress.emit(Event::Note("hello"));
        }
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 5, "{seen:?}");
        assert!(seen[0].contains("Started") && seen[0].contains("total: 3"));
        assert!(seen[2].contains("done: 3"));
        assert!(seen[4].contains("Finished"));
        Progress::silent().emit(Event::Note("nobody listens"));
    }
}
