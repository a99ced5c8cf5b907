//! Sokoban and VisualSokoban behind the [`Environment`] interface: a task is a level seed, the
//! game follows gym-sokoban, the text and prompts follow verl-agent (or the compact variant).

pub mod game;
pub mod generator;
pub mod image;
pub mod solver;
pub mod text;

use crate::env::{
    EnvError, Environment, EpisodeOutcome, Observation, Split, StepResult, Task, Vocabulary,
};
use crate::graph::{ObservationKind, PromptStyle, SokobanSpec};
use game::{Action, Dir, Game, Level};
use generator::{generate, GenConfig};
use serde_json::json;
use text::Turn;

/// The environment's name in errors and reports.
pub const NAME: &str = "sokoban";

/// The first seed of the evaluation split: train seeds are `index`, eval seeds `2^63 + index`,
/// so the two task sets never share a level.
pub const EVAL_SEED_BASE: u64 = 1 << 63;

/// The level seed of a task.
pub fn level_seed(task: Task) -> u64 {
    match task.split {
        Split::Train => task.index & (EVAL_SEED_BASE - 1),
        Split::Eval => EVAL_SEED_BASE | (task.index & (EVAL_SEED_BASE - 1)),
    }
}

/// The generator settings of a spec.
pub fn gen_config(spec: &SokobanSpec) -> GenConfig {
    GenConfig::new(spec.room[0], spec.room[1], spec.boxes, spec.search_depth)
}

/// The verl-agent action number (1..4) of a direction, and back.
fn dir_of(action: u8) -> Option<Dir> {
    (1..=4)
        .contains(&action)
        .then(|| Dir::ALL[action as usize - 1])
}

/// One Sokoban episode at a time, with its own history for the prompt.
#[derive(Debug, Clone)]
pub struct SokobanEnv {
    spec: SokobanSpec,
    game: Game,
    turns: Vec<Turn>,
    /// The turn limit of the current episode (the spec's `max_turns`, or a level's `max_steps`).
    max_turns: usize,
    env_return: f64,
    done: bool,
    won: bool,
}

impl SokobanEnv {
    /// A new environment on the first training level.
    pub fn new(spec: SokobanSpec) -> Result<SokobanEnv, EnvError> {
        let level = Self::level_for_seed(&spec, 0)?;
        let game = Game::new(level, spec.max_turns);
        Ok(SokobanEnv {
            game,
            turns: Vec::new(),
            max_turns: spec.max_turns,
            spec,
            env_return: 0.0,
            done: false,
            won: false,
        })
    }

    pub fn spec(&self) -> &SokobanSpec {
        &self.spec
    }

    /// The generated level of `seed` under this spec's room, boxes and depth.
    pub fn level_for_seed(spec: &SokobanSpec, seed: u64) -> Result<Level, EnvError> {
        generate(&gen_config(spec), seed)
            .map(|g| g.level)
            .map_err(|e| EnvError::Failed {
                env: NAME.into(),
                message: e.to_string(),
            })
    }

    /// Starts an episode on the level of `seed`.
    pub fn reset_seed(&mut self, seed: u64) -> Result<Observation, EnvError> {
        let level = Self::level_for_seed(&self.spec, seed)?;
        Ok(self.reset_level(level, self.spec.max_turns))
    }

    /// Starts an episode on an explicit level, ending after `max_steps` turns.
    pub fn reset_level(&mut self, level: Level, max_steps: usize) -> Observation {
        self.game = Game::new(level, max_steps);
        self.max_turns = max_steps;
        self.turns.clear();
        self.env_return = 0.0;
        self.done = false;
        self.won = false;
        self.observation()
    }

    pub fn game(&self) -> &Game {
        &self.game
    }

    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Turns taken (valid or not).
    pub fn turn_count(&self) -> usize {
        self.turns.len()
    }

    /// The observation text in this spec's style.
    pub fn observation_text(&self) -> String {
        match self.spec.prompt {
            PromptStyle::Verl => text::render_verl(self.game.level()),
            PromptStyle::Compact => text::render_compact_observation(self.game.level()),
        }
    }

    fn observes_images(&self) -> bool {
        self.spec.observation == ObservationKind::Image
    }

    /// The prompt of the current turn, showing the image placeholder or the text rendering.
    fn prompt_as(&self, image: bool) -> String {
        let current = self.observation_text();
        match self.spec.prompt {
            PromptStyle::Verl => text::verl_prompt(&current, &self.turns, self.spec.history, image),
            PromptStyle::Compact => {
                text::compact_prompt(&current, &self.turns, self.spec.history, image)
            }
        }
    }

    /// Parses the model's text into a verl-agent action number (0 = no game step) and validity.
    pub fn parse(&self, action_text: &str) -> (u8, bool) {
        match self.spec.prompt {
            PromptStyle::Verl => text::verl_projection(action_text),
            PromptStyle::Compact => match text::compact_projection(action_text) {
                Some(d) => (d.push_action(), true),
                None => (0, false),
            },
        }
    }

    /// Applies a verl-agent action number: 1..4 push-or-move, anything else the invalid action
    /// (-0.1, no game step, as verl-agent).
    pub fn apply(&mut self, action: u8, valid: bool) -> Result<StepResult, EnvError> {
        if self.done {
            return Err(EnvError::Failed {
                env: NAME.into(),
                message: "step called after the episode ended; reset first".into(),
            });
        }
        let before = self.observation_text();
        let before_player = self.game.player();
        let (reward, game_done) = match dir_of(action) {
            Some(dir) => {
                let t = self.game.step(Action::Push(dir));
                (t.reward, t.done)
            }
            None => (game::PENALTY_FOR_STEP, false),
        };
        self.turns.push(Turn {
            observation: before,
            action: if dir_of(action).is_some() { action } else { 0 },
        });
        self.env_return += reward;
        self.won = dir_of(action).is_some() && self.game.won();
        self.done = game_done || self.won || self.turns.len() >= self.max_turns;
        let info = json!({
            "room_state": self.game.level().state_grid(),
            "action_is_effective": self.game.player() != before_player,
            "boxes_on_target": self.game.boxes_on_target(),
            "action": dir_of(action).map(Dir::word),
            "turn": self.turns.len(),
        });
        Ok(StepResult {
            observation: self.observation(),
            reward,
            done: self.done,
            valid,
            won: self.won,
            info,
        })
    }
}

impl Environment for SokobanEnv {
    fn reset(&mut self, task: Task) -> Result<Observation, EnvError> {
        self.reset_seed(level_seed(task))
    }

    fn step(&mut self, action_text: &str) -> Result<StepResult, EnvError> {
        let (action, valid) = self.parse(action_text);
        self.apply(action, valid)
    }

    fn prompt(&self) -> String {
        self.prompt_as(self.observes_images())
    }

    fn text_prompt(&self) -> Option<String> {
        self.observes_images().then(|| self.prompt_as(false))
    }

    /// Under the compact prompt, the four move words (the verl prompt's answers are free text
    /// with reasoning).
    fn action_choices(&self) -> Option<Vec<String>> {
        (self.spec.prompt == PromptStyle::Compact)
            .then(|| ACTION_WORDS.iter().map(|w| w.to_string()).collect())
    }

    fn outcome(&self) -> EpisodeOutcome {
        EpisodeOutcome {
            won: self.won,
            score: if self.won { 1.0 } else { 0.0 },
            env_return: self.env_return,
        }
    }

    fn state_key(&self) -> String {
        text::render_verl(self.game.level())
    }

    fn observation(&self) -> Observation {
        Observation {
            text: self.observation_text(),
            image: self
                .observes_images()
                .then(|| image::render_rgb(self.game.level())),
        }
    }
}

/// The action words every style shares.
pub const ACTION_WORDS: [&str; 4] = ["up", "down", "left", "right"];

/// Every character the prompts of `spec` and its valid actions use, and the whole-word tokens.
pub fn vocabulary(spec: &SokobanSpec) -> Vocabulary {
    let mut words: Vec<String> = ACTION_WORDS.iter().map(|w| w.to_string()).collect();
    words.push(text::ACTION_CLOSE.into());
    if spec.observation == ObservationKind::Image {
        // One token that a patch encoder expands to one token per patch.
        words.push(text::IMAGE_PLACEHOLDER.into());
    }
    let mut pieces: Vec<String> = ACTION_WORDS.iter().map(|w| w.to_string()).collect();
    pieces.push(text::ACTION_OPEN.into());
    pieces.push(text::ACTION_CLOSE.into());
    match spec.prompt {
        PromptStyle::Verl => {
            words.extend(["<action>", "<think>", "</think>"].map(String::from));
            pieces.push(text::VERL_TEMPLATE_NO_HISTORY.into());
            pieces.push(text::VERL_TEMPLATE.into());
            if spec.observation == ObservationKind::Image {
                pieces.push(text::VERL_VISUAL_TEMPLATE.into());
            }
            pieces.extend((0..=6).map(|c| text::verl_cell(c).to_string()));
            pieces.push("[Observation : '', Action : '']\n0123456789".into());
            pieces.extend((0..=4).map(|a| text::verl_action_label(a).to_string()));
            pieces.push("<think></think>".into());
        }
        PromptStyle::Compact => {
            // The prompt's last piece, one token: a turn's prompt is then the grid and one more.
            words.push(text::ACTION_OPEN.into());
            pieces.extend((0..=6).map(|c| game::compact_symbol(c).to_string()));
            pieces.push(format!("{} none\n", text::COMPACT_MOVES));
            if spec.observation == ObservationKind::Image {
                pieces.push(text::IMAGE_PLACEHOLDER.into());
            }
        }
    }
    let mut chars: Vec<char> = pieces.iter().flat_map(|p| p.chars()).collect();
    chars.sort_unstable();
    chars.dedup();
    Vocabulary {
        alphabet: chars.into_iter().collect(),
        words,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(prompt: PromptStyle) -> SokobanSpec {
        SokobanSpec {
            prompt,
            ..SokobanSpec::default()
        }
    }

    #[test]
    fn tasks_map_to_disjoint_seeds() {
        let train = level_seed(Task {
            split: Split::Train,
            index: 5,
        });
        let eval = level_seed(Task {
            split: Split::Eval,
            index: 5,
        });
        assert_eq!(train, 5);
        assert_eq!(eval, (1 << 63) + 5);
        let mut env = SokobanEnv::new(SokobanSpec::default()).unwrap();
        let a = env
            .reset(Task {
                split: Split::Train,
                index: 5,
            })
            .unwrap();
        let b = env
            .reset(Task {
                split: Split::Train,
                index: 5,
            })
            .unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn invalid_actions_cost_a_turn_but_no_game_step() {
        let mut env = SokobanEnv::new(spec(PromptStyle::Verl)).unwrap();
        env.reset_level(
            Level::from_picture(&["######", "#PX_O#", "######"]).unwrap(),
            10,
        );
        let r = env.step("<think>hm</think><action>jump</action>").unwrap();
        assert!(!r.valid && !r.done && !r.won);
        assert!((r.reward + 0.1).abs() < 1e-12);
        assert_eq!(env.game().num_env_steps(), 0);
        // Missing <think>: invalid, but the action still runs.
        let r = env.step("<action>right</action>").unwrap();
        assert!(!r.valid);
        assert_eq!(env.game().player(), (1, 2));
        let r = env.step("<think>x</think><action>right</action>").unwrap();
        assert!(r.valid && r.done && r.won);
        assert!((r.reward - 10.9).abs() < 1e-12);
        let o = env.outcome();
        assert!(o.won && o.score == 1.0);
        assert!((o.env_return - 10.7).abs() < 1e-9);
        assert!(env.step("<action>up</action>").is_err());
        // The history shows the invalid turn as `Still`.
        let (lines, _) = text::verl_history(&env.turns, 5);
        assert!(lines.contains("Action 1: 'Still'"));
        assert!(lines.contains("Action 2: 'Right'"));
    }

    #[test]
    fn the_turn_limit_ends_the_episode() {
        let mut env = SokobanEnv::new(SokobanSpec {
            max_turns: 3,
            ..spec(PromptStyle::Compact)
        })
        .unwrap();
        env.reset_seed(11).unwrap();
        assert!(!env.step("nothing").unwrap().done);
        assert!(!env.step("nothing").unwrap().done);
        let r = env.step("nothing").unwrap();
        assert!(r.done && !r.won);
        let o = env.outcome();
        assert!(!o.won && o.score == 0.0);
        assert!((o.env_return + 0.3).abs() < 1e-9);
    }

    #[test]
    fn compact_prompt_fits_a_small_context() {
        let mut env = SokobanEnv::new(SokobanSpec {
            history: 3,
            ..spec(PromptStyle::Compact)
        })
        .unwrap();
        env.reset_seed(3).unwrap();
        for _ in 0..5 {
            if env.step("up</action>").unwrap().done {
                break;
            }
        }
        let p = env.prompt();
        assert!(p.ends_with("<action>"));
        assert!(p.chars().count() < 80, "{p}");
        let vocab = vocabulary(env.spec());
        assert!(p.chars().all(|c| vocab.alphabet.contains(c)), "{p}");
    }

    #[test]
    fn vocabulary_covers_the_verl_prompt_and_answers() {
        let mut env = SokobanEnv::new(spec(PromptStyle::Verl)).unwrap();
        env.reset_seed(9).unwrap();
        env.step("<think>go</think><action>down</action>").unwrap();
        let p = env.prompt();
        let vocab = vocabulary(env.spec());
        assert!(p.chars().all(|c| vocab.alphabet.contains(c)));
        assert!(vocab.words.contains(&"<think>".to_string()));
        assert!(vocab.alphabet.contains('\u{221a}'));
        let compact = vocabulary(&spec(PromptStyle::Compact));
        assert_eq!(
            compact.words,
            ["up", "down", "left", "right", "</action>", "<action>"]
        );
        // A 6x6 turn without history: the 4x4 inside, four newlines and `<action>` as one token.
        let mut env = SokobanEnv::new(SokobanSpec {
            history: 0,
            ..spec(PromptStyle::Compact)
        })
        .unwrap();
        env.reset_seed(9).unwrap();
        let tokenizer =
            crate::model::tokenizer::Tokenizer::chars_with_words(&compact.alphabet, &compact.words);
        assert_eq!(tokenizer.encode(&env.prompt()).len(), 16 + 4 + 1);
    }

    #[test]
    fn image_observations_when_asked() {
        let mut env = SokobanEnv::new(SokobanSpec {
            observation: ObservationKind::Image,
            ..SokobanSpec::default()
        })
        .unwrap();
        let o = env.reset_seed(1).unwrap();
        let img = o.image.expect("an image");
        assert_eq!((img.width, img.height), (96, 96));
        assert!(o.text.contains(" # \t"));
        assert!(env.prompt().contains("<image>"));
        let text = env.text_prompt().expect("a text view");
        assert!(
            !text.contains("<image>") && text.contains(" # \t"),
            "{text}"
        );
        let o = SokobanEnv::new(SokobanSpec::default())
            .unwrap()
            .observation();
        assert!(o.image.is_none());
    }
}
