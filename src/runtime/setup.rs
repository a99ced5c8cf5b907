//! Building what a graph names: environments, the tokenizer, sampling options and the thread
//! count, from the graph's specs.

use std::path::Path;

use super::RuntimeError;
use crate::env::Environment;
use crate::graph::{EnvSpec, ExecGraph, ObservationKind, PolicySpec};
use crate::model::{LanguageModel, SampleOptions, Tokenizer, VisionConfig};

/// `count` fresh instances of the graph's environment.
pub fn make_envs(spec: &EnvSpec, count: usize) -> Result<Vec<Box<dyn Environment>>, RuntimeError> {
    (0..count).map(|_| make_env(spec)).collect()
}

/// One fresh instance of the graph's environment.
pub fn make_env(spec: &EnvSpec) -> Result<Box<dyn Environment>, RuntimeError> {
    match spec {
        EnvSpec::Sokoban(s) => Ok(Box::new(crate::env::sokoban::SokobanEnv::new(s.clone())?)),
        EnvSpec::Webshop(s) => Ok(Box::new(
            crate::env::webshop::WebshopEnv::new(s).map_err(crate::env::EnvError::from)?,
        )),
        EnvSpec::Sotopia(_) => Err(RuntimeError::Unsupported(
            "the `sotopia` environment is not available to the trainer in this build".into(),
        )),
        EnvSpec::External(s) => Ok(Box::new(crate::env::protocol::ExternalEnv::spawn(
            s.clone(),
        )?)),
    }
}

/// The turn limit of an environment spec.
pub fn max_turns(spec: &EnvSpec) -> usize {
    match spec {
        EnvSpec::Sokoban(s) => s.max_turns,
        EnvSpec::Webshop(s) => s.max_turns,
        EnvSpec::Sotopia(s) => s.max_turns,
        EnvSpec::External(s) => s.max_turns,
    }
}

/// The policy's tokenizer: the environment's characters and action words for a model trained
/// from scratch, the model directory's `tokenizer.json` for a Hugging Face model.
pub fn make_tokenizer(graph: &ExecGraph) -> Result<Tokenizer, RuntimeError> {
    match &graph.policy {
        PolicySpec::Transformer(_) => {
            let vocab = match &graph.env {
                EnvSpec::Sokoban(s) => crate::env::sokoban::vocabulary(s),
                EnvSpec::Webshop(s) => {
                    crate::env::webshop::vocabulary(s).map_err(crate::env::EnvError::from)?
                }
                // An external environment's text is unknown in advance: printable ASCII, with
                // anything else mapped to `<unk>`.
                EnvSpec::External(_) => crate::env::Vocabulary {
                    alphabet: (' '..='~').chain(['\n', '\t']).collect(),
                    words: Vec::new(),
                },
                EnvSpec::Sotopia(_) => {
                    let what = "the `sotopia` environment is not available to the trainer yet";
                    return Err(RuntimeError::Unsupported(what.into()));
                }
            };
            Ok(Tokenizer::chars_with_words(&vocab.alphabet, &vocab.words))
        }
        PolicySpec::Hf(h) => Ok(Tokenizer::from_file(
            &Path::new(&h.path).join("tokenizer.json"),
        )?),
    }
}

/// Training-time sampling options of the policy.
pub fn sampling_of(policy: &PolicySpec) -> SampleOptions {
    match policy {
        PolicySpec::Transformer(t) => SampleOptions::from(&t.sampling),
        PolicySpec::Hf(h) => SampleOptions::from(&h.sampling),
    }
}

/// Sets candle's worker-thread count before its first tensor operation (it reads
/// `RAYON_NUM_THREADS` once). `0` keeps a user's own setting, or else uses every core.
pub fn set_threads(threads: usize) {
    if threads > 0 {
        std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
    }
}

/// The patch encoder the policy needs: one for image observations with the built-in
/// transformer (patch side from the recipe, position tables sized to the rendered room, the
/// tokenizer's `<image>` token), none otherwise.
pub fn vision_config(
    graph: &ExecGraph,
    tokenizer: &Tokenizer,
) -> Result<Option<VisionConfig>, RuntimeError> {
    let (EnvSpec::Sokoban(env), PolicySpec::Transformer(t)) = (&graph.env, &graph.policy) else {
        return Ok(None);
    };
    if env.observation != ObservationKind::Image {
        return Ok(None);
    }
    let tile = crate::env::sokoban::image::TILE;
    let (height, width) = (env.room[0] * tile, env.room[1] * tile);
    if t.patch == 0 || height % t.patch != 0 || width % t.patch != 0 {
        return Err(RuntimeError::Config(format!(
            "`patch = {}` does not divide the {width}x{height}-pixel frames of a {}x{} room; \
             use a divisor of the {tile}-pixel cell (e.g. `patch = {tile}`: one patch per cell)",
            t.patch, env.room[0], env.room[1]
        )));
    }
    let placeholder = crate::env::sokoban::text::IMAGE_PLACEHOLDER;
    let ids = tokenizer.encode(placeholder);
    let [image_token] = ids[..] else {
        return Err(RuntimeError::Config(format!(
            "the tokenizer spells `{placeholder}` as {} tokens, not one",
            ids.len()
        )));
    };
    Ok(Some(VisionConfig {
        patch: t.patch,
        grid: [height / t.patch, width / t.patch],
        image_token,
    }))
}

/// The policy of a fresh run, seeded: the recipe's model, with a patch encoder when the
/// environment shows images.
pub fn make_policy(
    graph: &ExecGraph,
    tokenizer: &Tokenizer,
    device: &candle_core::Device,
    seed: u64,
) -> Result<LanguageModel, RuntimeError> {
    let vision = vision_config(graph, tokenizer)?;
    Ok(LanguageModel::from_spec_with_vision(
        &graph.policy,
        tokenizer,
        device,
        seed,
        vision,
    )?)
}
