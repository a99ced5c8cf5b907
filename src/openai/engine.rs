//! The scheduler of `oprl serve`: one thread owns the model, gathers the generation jobs that
//! arrive together (from any number of HTTP requests) and runs them through the model as one
//! batch, each row with its own sampling settings, reporting every token as it is drawn.

use std::collections::VecDeque;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::model::{Batch, LanguageModel, RowSampling, TokenEvent};

/// One sampled token.
#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    pub id: u32,
    /// Log-prob under the untempered distribution.
    pub logprob: f32,
    /// The most likely alternatives (as many as the job asked for), most likely first.
    pub top: Vec<(u32, f32)>,
}

/// What a job's caller receives: its tokens one by one, or why the batch failed.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Step {
        token: Token,
        /// Every token of the job so far, decoded (special tokens dropped).
        text: String,
        /// `Some(stopped)` on the job's last token: `true` at an end-of-sequence id or a stop
        /// string, `false` at the length limit.
        finished: Option<bool>,
    },
    Failed(String),
}

/// A whole generation, gathered from its events by [`collect`].
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    pub tokens: Vec<Token>,
    pub text: String,
    pub stopped: bool,
}

/// Waits for the `count` jobs tagged `0..count` that report to `events` and returns their
/// generations in tag order; the first failure fails all.
pub fn collect(events: &Receiver<(usize, Event)>, count: usize) -> Result<Vec<Output>, String> {
    let mut outputs: Vec<Output> = (0..count)
        .map(|_| Output {
            tokens: vec![],
            text: String::new(),
            stopped: false,
        })
        .collect();
    let mut open = count;
    while open > 0 {
        match events.recv() {
            Ok((
                tag,
                Event::Step {
                    token,
                    text,
                    finished,
                },
            )) => {
                let out = &mut outputs[tag];
                out.tokens.push(token);
                out.text = text;
                if let Some(stopped) = finished {
                    out.stopped = stopped;
                    open -= 1;
                }
            }
            Ok((_, Event::Failed(e))) => return Err(e),
            Err(_) => return Err("the model's scheduler stopped".into()),
        }
    }
    Ok(outputs)
}

/// A generation job: a prompt of token ids and how to sample from it. Its events go to
/// `events`, tagged with `tag`; when the receiver is dropped the job is abandoned.
pub struct Job {
    pub prompt: Vec<u32>,
    pub sampling: RowSampling,
    pub tag: usize,
    pub events: Sender<(usize, Event)>,
}

/// How long the scheduler waits for more jobs after one arrives: requests sent together reach
/// it within a few milliseconds of each other, and batching them is worth far more.
const GATHER: Duration = Duration::from_millis(15);
/// The most rows one batch holds.
pub const MAX_BATCH: usize = 32;

/// The scheduler thread and the queue into it; dropping it stops the thread once the batch in
/// progress is done.
pub struct Engine {
    jobs: Option<Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl Engine {
    /// Moves `model` into a new scheduler thread.
    pub fn start(model: LanguageModel) -> Engine {
        let (jobs, queue) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("oprl-serve-scheduler".into())
            .spawn(move || schedule(&model, &queue))
            .expect("the scheduler thread starts");
        Engine {
            jobs: Some(jobs),
            thread: Some(thread),
        }
    }

    /// Queues `jobs`; a job the scheduler can no longer take reports [`Event::Failed`].
    pub fn submit(&self, jobs: Vec<Job>) {
        for job in jobs {
            let sent = match &self.jobs {
                Some(queue) => queue.send(job),
                None => Err(mpsc::SendError(job)),
            };
            if let Err(mpsc::SendError(job)) = sent {
                let _ = job.events.send((
                    job.tag,
                    Event::Failed("the model's scheduler has stopped".into()),
                ));
            }
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn schedule(model: &LanguageModel, queue: &Receiver<Job>) {
    let mut pending: VecDeque<Job> = VecDeque::new();
    loop {
        if pending.is_empty() {
            match queue.recv() {
                Ok(job) => pending.push_back(job),
                Err(_) => return,
            }
            while pending.len() < MAX_BATCH {
                match queue.recv_timeout(GATHER) {
                    Ok(job) => pending.push_back(job),
                    Err(RecvTimeoutError::Timeout) => break,
                    Err(RecvTimeoutError::Disconnected) => break,
                }
            }
        } else {
            pending.extend(queue.try_iter());
        }
        let batch = take_batch(&mut pending, model.context());
        run_batch(model, batch);
    }
}

/// The longest run of jobs from the front of `pending` that fits one batch: at most
/// [`MAX_BATCH`] rows, and the longest prompt plus the longest generation within `context`
/// (every prompt is left-padded to the longest). The first job always goes.
fn take_batch(pending: &mut VecDeque<Job>, context: usize) -> Vec<Job> {
    let (mut longest, mut most_new) = (0, 0);
    let mut n = 0;
    for job in pending.iter() {
        let l = longest.max(job.prompt.len());
        let m = most_new.max(job.sampling.options.max_new_tokens);
        if n > 0 && (n == MAX_BATCH || l + m > context) {
            break;
        }
        (longest, most_new, n) = (l, m, n + 1);
    }
    pending.drain(..n).collect()
}

fn run_batch(model: &LanguageModel, jobs: Vec<Job>) {
    // A job whose caller went away leaves the batch at its first token.
    let live = jobs;
    let prompts: Vec<Vec<u32>> = live.iter().map(|j| j.prompt.clone()).collect();
    let mut rows: Vec<RowSampling> = live.iter().map(|j| j.sampling.clone()).collect();
    let mut report = |e: TokenEvent| {
        let job = &live[e.row];
        let step = Event::Step {
            token: Token {
                id: e.token,
                logprob: e.logprob,
                top: e.top.to_vec(),
            },
            text: e.text.to_string(),
            finished: e.finished,
        };
        job.events.send((job.tag, step)).is_ok()
    };
    if let Err(e) = model.generate_each(Batch::new(&prompts), &mut rows, &mut report) {
        for job in &live {
            let _ = job.events.send((job.tag, Event::Failed(e.to_string())));
        }
    }
}
