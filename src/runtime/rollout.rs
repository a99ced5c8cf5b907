//! The rollout engine: every environment of the batch is stepped turn by turn together. Each
//! turn builds the prompts of all unfinished episodes, samples all their actions in one batched
//! generation, steps the environments and drops the ones that finished. Turns an environment
//! asks the runtime to play for a partner with the policy's own weights (SOTOPIA self-chat)
//! are generated in the same batch and not recorded as trained steps.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rand_chacha::ChaCha8Rng;

use super::batch::{Step, Trajectory};
use super::observer::{Note, Observer};
use super::RuntimeError;
use crate::env::{EnvError, Environment, RgbImage, Task};
use crate::model::{chat, Batch, ChoiceSet, LanguageModel, ModelError, SampleOptions, Tokenizer};

/// How hard to try before giving up on a failing environment call, and whom to tell about
/// each retry ([`Note::EnvRetry`]).
#[derive(Clone)]
pub struct RetryPolicy {
    pub attempts: usize,
    pub first_backoff: Duration,
    pub observer: Option<Arc<dyn Observer>>,
}

impl RetryPolicy {
    /// Tells the observer, if any, that call `call` of environment `env` failed and is retried.
    fn report(&self, env: usize, call: &'static str, error: &EnvError) {
        if let Some(o) = &self.observer {
            o.note(Note::EnvRetry { env, call, error });
        }
    }
}

impl std::fmt::Debug for RetryPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RetryPolicy")
            .field("attempts", &self.attempts)
            .field("first_backoff", &self.first_backoff)
            .field("observer", &self.observer.is_some())
            .finish()
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 4,
            first_backoff: Duration::from_millis(200),
            observer: None,
        }
    }
}

/// Calls `f` until it succeeds, waiting 1x, 4x, 16x... the first backoff between attempts.
/// Every failure is reported through `on_retry`; the last one is returned as the error.
pub fn with_retry<T>(
    policy: &RetryPolicy,
    mut f: impl FnMut() -> Result<T, EnvError>,
    mut on_retry: impl FnMut(usize, &EnvError),
) -> Result<T, (usize, EnvError)> {
    let mut wait = policy.first_backoff;
    let mut attempt = 1;
    loop {
        match f() {
            Ok(v) => return Ok(v),
            Err(e) if attempt >= policy.attempts.max(1) => return Err((attempt, e)),
            Err(e) => {
                on_retry(attempt, &e);
                std::thread::sleep(wait);
                wait *= 4;
                attempt += 1;
            }
        }
    }
}

/// Counters of one rollout, for the speed metrics.
#[derive(Debug, Clone, Copy, Default)]
pub struct RolloutStats {
    /// Action tokens generated.
    pub tokens: usize,
    /// Environment steps taken.
    pub env_steps: usize,
    /// Environment calls that failed and were retried.
    pub env_retries: usize,
    /// Time spent inside `generate`.
    pub generate_time: f64,
    /// Time spent inside the environments.
    pub env_time: f64,
}

/// Tokenises a step prompt: `<bos>` then the text, cut from the left (keeping `<bos>`) so that at
/// most `limit` tokens remain.
pub fn encode_prompt(tokenizer: &Tokenizer, text: &str, limit: usize) -> Vec<u32> {
    cut_prompt(tokenizer, &tokenizer.encode(text), limit)
}

/// `<bos>` then `body`, cut from the left so that at most `limit` tokens remain.
fn cut_prompt(tokenizer: &Tokenizer, body: &[u32], limit: usize) -> Vec<u32> {
    let keep = limit.saturating_sub(1).min(body.len());
    let mut out = Vec::with_capacity(keep + 1);
    out.push(tokenizer.bos_id());
    out.extend_from_slice(&body[body.len() - keep..]);
    out
}

/// The prompt ids of one turn, given as chat `messages` and as the compact `text`: the messages
/// through the model's chat template when it has one (a pretrained instruct model), else
/// `<bos>` and the text. Both are built lazily: an environment renders only the form the model
/// reads.
fn chat_or_compact(
    tokenizer: &Tokenizer,
    messages: impl FnOnce() -> Vec<chat::Message>,
    text: impl FnOnce() -> String,
    limit: usize,
) -> Result<Vec<u32>, RuntimeError> {
    match tokenizer.chat_template() {
        Some(template) => tokenizer
            .chat_prompt_ids(template, &messages(), limit)
            .map_err(|e| RuntimeError::Model(ModelError::from(e).into())),
        None => Ok(encode_prompt(tokenizer, &text(), limit)),
    }
}

/// What the policy reads on one turn: its prompt ids (image placeholders expanded to one token
/// per patch), the frame when the policy reads images, and then the text prompt of the same
/// state (for a text-reading PRM).
fn turn_input(
    env: &dyn Environment,
    policy: &LanguageModel,
    tokenizer: &Tokenizer,
    limit: usize,
) -> Result<(Vec<u32>, Option<Arc<RgbImage>>, Option<Vec<u32>>), RuntimeError> {
    if policy.vision().is_none() {
        let ids = chat_or_compact(tokenizer, || env.messages(), || env.prompt(), limit)?;
        return Ok((ids, None, None));
    }
    // Image-reading policies are oprl's own transformers: compact prompts, no template.
    let text = env.prompt();
    Ok(match env.observation().image {
        Some(image) => {
            let body = policy.expand_image_tokens(&tokenizer.encode(&text), &image);
            let text_prompt = env
                .text_prompt()
                .map(|t| encode_prompt(tokenizer, &t, limit));
            (
                cut_prompt(tokenizer, &body, limit),
                Some(Arc::new(image)),
                text_prompt,
            )
        }
        None => (encode_prompt(tokenizer, &text, limit), None, None),
    })
}

/// The answers `env` accepts this turn as token sequences that fit `max_new_tokens`, when it
/// lists them; `None` samples the turn freely.
fn turn_choices(
    env: &dyn Environment,
    tokenizer: &Tokenizer,
    opts: &SampleOptions,
) -> Option<Arc<ChoiceSet>> {
    let texts = env.action_choices()?;
    ChoiceSet::from_texts(tokenizer, &texts, opts.max_new_tokens).map(Arc::new)
}

/// Plays one episode on every environment, `tasks[i]` on `envs[i]`, `group_of[i]` its group.
#[allow(clippy::too_many_arguments)]
pub fn rollout(
    envs: &mut [Box<dyn Environment>],
    tasks: &[Task],
    group_of: &[usize],
    policy: &LanguageModel,
    tokenizer: &Tokenizer,
    opts: &SampleOptions,
    max_turns: usize,
    retry: RetryPolicy,
    rng: &mut ChaCha8Rng,
    stats: &mut RolloutStats,
) -> Result<Vec<Trajectory>, RuntimeError> {
    let prompt_limit = policy.context().saturating_sub(opts.max_new_tokens);
    if prompt_limit < 2 {
        return Err(RuntimeError::Config(format!(
            "the model context ({} tokens) leaves no room for a prompt next to {} new tokens",
            policy.context(),
            opts.max_new_tokens
        )));
    }
    let env_call = |i: usize, what: &str, e: (usize, EnvError)| RuntimeError::EnvGaveUp {
        env: i,
        call: what.to_string(),
        attempts: e.0,
        source: e.1,
    };
    let mut steps: Vec<Vec<Step>> = vec![Vec::new(); envs.len()];
    let mut active: Vec<usize> = Vec::with_capacity(envs.len());
    let t_env = Instant::now();
    for (i, env) in envs.iter_mut().enumerate() {
        let task = tasks[i];
        let mut retries = 0;
        with_retry(
            &retry,
            || env.reset(task),
            |_, e| {
                retries += 1;
                retry.report(i, "reset", e);
            },
        )
        .map_err(|e| env_call(i, "reset", e))?;
        stats.env_retries += retries;
        active.push(i);
    }
    stats.env_time += t_env.elapsed().as_secs_f64();

    // Each round generates one turn for every unfinished episode, in one batch: the policy's
    // own turn (recorded and trained), or a turn of a partner that the environment asks the
    // runtime to play with the same live weights (SOTOPIA self-chat; not recorded). An
    // episode stops after `max_turns` turns of either kind.
    let mut policy_turns = vec![0usize; envs.len()];
    let mut partner_turns = vec![0usize; envs.len()];
    let mut final_info = vec![serde_json::Value::Null; envs.len()];
    while !active.is_empty() {
        let partner_prompts: Vec<Option<String>> =
            active.iter().map(|&i| envs[i].partner_prompt()).collect();
        let (mut prompts, mut images, mut text_prompts, mut choices) = (
            Vec::with_capacity(active.len()),
            Vec::with_capacity(active.len()),
            Vec::with_capacity(active.len()),
            Vec::with_capacity(active.len()),
        );
        for (&i, partner) in active.iter().zip(&partner_prompts) {
            let env = envs[i].as_ref();
            let (p, image, text) = match partner {
                // A partner plays from its own prompt.
                Some(p) => {
                    let messages = || env.partner_messages().unwrap_or_default();
                    let ids = chat_or_compact(tokenizer, messages, || p.clone(), prompt_limit)?;
                    (ids, None, None)
                }
                None => turn_input(env, policy, tokenizer, prompt_limit)?,
            };
            prompts.push(p);
            images.push(image);
            text_prompts.push(text);
            choices.push(match partner {
                None if opts.admissible_only => turn_choices(envs[i].as_ref(), tokenizer, opts),
                _ => None,
            });
        }
        let t_gen = Instant::now();
        let image_refs: Vec<Option<&RgbImage>> = if images.iter().any(Option::is_some) {
            images.iter().map(|i| i.as_deref()).collect()
        } else {
            Vec::new()
        };
        let choice_refs: Vec<Option<&ChoiceSet>> = choices.iter().map(|c| c.as_deref()).collect();
        let generations = policy.generate(
            Batch::new(&prompts)
                .with_images(&image_refs)
                .with_choices(&choice_refs),
            opts,
            rng,
        )?;
        stats.generate_time += t_gen.elapsed().as_secs_f64();

        let t_env = Instant::now();
        let mut still_active = Vec::with_capacity(active.len());
        for (k, (((&i, prompt), generation), partner)) in active
            .iter()
            .zip(prompts)
            .zip(generations)
            .zip(partner_prompts)
            .enumerate()
        {
            let env = &mut envs[i];
            stats.tokens += generation.tokens.len();
            if partner.is_some() {
                let result = env
                    .partner_step(&generation.text)
                    .map_err(|e| env_call(i, "partner step", (1, e)))?;
                partner_turns[i] += 1;
                final_info[i] = result.info;
                if !result.done && partner_turns[i] < max_turns {
                    still_active.push(i);
                }
                continue;
            }
            let state_key = env.state_key();
            let observation = env.observation().text;
            let mut retries = 0;
            let result = with_retry(
                &retry,
                || env.step(&generation.text),
                |_, e| {
                    retries += 1;
                    retry.report(i, "step", e);
                },
            )
            .map_err(|e| env_call(i, "step", e))?;
            stats.env_retries += retries;
            stats.env_steps += 1;
            policy_turns[i] += 1;
            final_info[i] = result.info;
            steps[i].push(Step {
                prompt,
                action: generation.tokens,
                text: generation.text,
                token_logp_old: generation.logprobs,
                env_reward: result.reward,
                valid: result.valid,
                state_key,
                observation,
                image: images[k].take(),
                text_prompt: text_prompts[k].take(),
                choices: choices[k].take(),
            });
            if !result.done && policy_turns[i] < max_turns {
                still_active.push(i);
            }
        }
        stats.env_time += t_env.elapsed().as_secs_f64();
        active = still_active;
    }

    Ok(envs
        .iter()
        .zip(steps)
        .zip(final_info)
        .enumerate()
        .map(|(i, ((env, steps), final_info))| Trajectory {
            group: group_of[i],
            task: tasks[i],
            steps,
            outcome: env.outcome(),
            final_observation: env.observation().text,
            final_info,
            final_image: policy
                .vision()
                .and_then(|_| env.observation().image.map(Arc::new)),
            reward: 0.0,
            success: false,
        })
        .collect())
}
