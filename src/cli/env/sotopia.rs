//! `oprl env play sotopia`: a person plays the policy's side in the terminal against the
//! configured partner; at the end the judge's scores are shown.

use std::io::{BufRead, Write};

use crate::env::sotopia::{
    load_scenarios, model_partner, EndpointPartner, Episode, Judgement, Partner, PartnerError,
    RubricJudge, SotopiaEnv, Termination,
};
use crate::env::{EnvError, Environment, Split, Task};
use crate::graph::{EndpointSpec, PromptStyle, SotopiaSide, SotopiaSpec};
use crate::reward::judge::{EpisodeJudge, LlmJudge};
use crate::runtime::setup::load_backend;

use crate::cli::{fail, EXIT_OK, EXIT_USAGE};

fn io(e: std::io::Error) -> EnvError {
    EnvError::Io(e)
}

fn print_turns(ep: &Episode, from: usize, out: &mut dyn Write) -> Result<(), EnvError> {
    for t in &ep.turns[from..] {
        let who = if t.agent == ep.policy_agent {
            "(you) "
        } else {
            ""
        };
        writeln!(
            out,
            "Turn #{}: {who}{} {}",
            t.turn_number,
            ep.name(t.agent),
            t.action.to_natural_language()
        )
        .map_err(io)?;
    }
    Ok(())
}

/// Plays one episode of `task`: shows the background the policy's side sees, reads one turn
/// per line from `input` (plain text to speak, `*gesture*`, `[action] ...`, `[leave]`,
/// `[none]`, or SOTOPIA's JSON; end of input leaves), and prints every turn. Returns the
/// finished episode and, with a `judge`, its judgement (also printed).
pub fn play(
    env: &mut SotopiaEnv,
    task: Task,
    judge: Option<&dyn EpisodeJudge>,
    input: &mut dyn BufRead,
    out: &mut dyn Write,
) -> Result<(Episode, Option<Judgement>), EnvError> {
    env.reset(task)?;
    let ep = env.episode().ok_or_else(|| EnvError::Failed {
        env: "sotopia".into(),
        message: "no episode after reset".into(),
    })?;
    writeln!(out, "{}", ep.background(Some(ep.policy_agent))).map_err(io)?;
    writeln!(
        out,
        "You are {}; your partner is {}. Type a line to speak, *gesture*, [action] ..., [leave] or [none].\nConversation Starts:",
        ep.name(ep.policy_agent),
        env.partner().describe()
    )
    .map_err(io)?;
    print_turns(ep, 0, out)?;
    let mut shown = ep.turns.len();
    let mut line = String::new();
    loop {
        let ep = env.episode().expect("reset made an episode");
        if ep.done() {
            break;
        }
        write!(out, "{}> ", ep.name(ep.policy_agent)).map_err(io)?;
        out.flush().map_err(io)?;
        line.clear();
        let read = input.read_line(&mut line).map_err(io)?;
        let text = if read == 0 {
            "[leave]"
        } else {
            line.trim_end()
        };
        env.step(text)?;
        let ep = env.episode().expect("reset made an episode");
        print_turns(ep, shown, out)?;
        shown = ep.turns.len();
    }
    let ep = env.episode().expect("reset made an episode").clone();
    writeln!(
        out,
        "The conversation ended: {}.",
        match ep.termination {
            Some(Termination::Left { agent }) => format!("{} left", ep.name(agent)),
            Some(Termination::Stale) => "nobody did anything for three turns".into(),
            _ => format!("{} turns were played", ep.max_turns),
        }
    )
    .map_err(io)?;
    let judgement = match judge {
        None => None,
        Some(j) => {
            let judgement = j.judge(&ep).map_err(|e| EnvError::Failed {
                env: "sotopia".into(),
                message: e.to_string(),
            })?;
            for (i, s) in judgement.agents.iter().enumerate() {
                writeln!(
                    out,
                    "{}{}: goal {:.1}, believability {:.1}, relationship {:.1}, knowledge {:.1}, secret {:.1}, social rules {:.1}, financial {:.1}, overall {:.2}",
                    ep.name(i),
                    if i == ep.policy_agent { " (you)" } else { "" },
                    s.goal,
                    s.believability,
                    s.relationship,
                    s.knowledge,
                    s.secret,
                    s.social_rules,
                    s.financial_and_material_benefits,
                    s.overall()
                )
                .map_err(io)?;
            }
            Some(judgement)
        }
    };
    Ok((ep, judgement))
}

/// The partner for a person at the terminal: another person typing on the same terminal
/// (hot seat), used when no model or endpoint is given.
pub struct HotSeatPartner;

impl Partner for HotSeatPartner {
    fn act(&mut self, episode: &Episode, agent: usize) -> Result<String, PartnerError> {
        let mut out = std::io::stdout();
        let _ = write!(out, "{}> ", episode.name(agent));
        let _ = out.flush();
        let mut line = String::new();
        let read = std::io::stdin()
            .read_line(&mut line)
            .map_err(|e| PartnerError::Model(e.to_string()))?;
        Ok(if read == 0 {
            "[leave]".to_string()
        } else {
            line.trim_end().to_string()
        })
    }

    fn describe(&self) -> String {
        "another person at this terminal".into()
    }
}

/// `oprl env play sotopia` settings, from `--set KEY=VALUE`.
#[derive(Debug, Clone, PartialEq)]
pub struct PlaySettings {
    pub spec: SotopiaSpec,
    /// `None`: hot seat; `http...`: an endpoint; otherwise a run or model directory.
    pub partner: Option<String>,
    pub partner_model: String,
    pub partner_key_env: Option<String>,
    /// `None`: the embedded rubric judge when the scenarios have rubrics.
    pub judge: Option<String>,
    pub judge_model: String,
    pub judge_key_env: Option<String>,
}

/// Reads `--set` settings: `scenarios`, `hard_only`, `side` (first|second), `max_turns`,
/// `partner` (URL or model/run directory), `partner_model`, `partner_key_env`, `judge` (URL),
/// `judge_model`, `judge_key_env`.
pub fn play_settings(sets: &[String]) -> Result<PlaySettings, String> {
    let mut s = PlaySettings {
        spec: SotopiaSpec::default(),
        partner: None,
        partner_model: "default".into(),
        partner_key_env: None,
        judge: None,
        judge_model: "default".into(),
        judge_key_env: None,
    };
    for set in sets {
        let (key, value) = set
            .split_once('=')
            .ok_or_else(|| format!("`{set}` is not KEY=VALUE"))?;
        let (key, value) = (key.trim(), value.trim().to_string());
        match key {
            "scenarios" => s.spec.scenarios = Some(value),
            "hard_only" => {
                s.spec.hard_only = value
                    .parse()
                    .map_err(|_| format!("`hard_only` is true or false, got `{value}`"))?
            }
            "side" => {
                s.spec.side = match value.as_str() {
                    "first" => SotopiaSide::First,
                    "second" => SotopiaSide::Second,
                    _ => return Err(format!("`side` is first or second, got `{value}`")),
                }
            }
            "max_turns" => {
                s.spec.max_turns = value
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| format!("`max_turns` needs a positive whole number, got `{value}`"))?
            }
            "partner" => s.partner = Some(value),
            "partner_model" => s.partner_model = value,
            "partner_key_env" => s.partner_key_env = Some(value),
            "judge" => s.judge = Some(value),
            "judge_model" => s.judge_model = value,
            "judge_key_env" => s.judge_key_env = Some(value),
            other => {
                return Err(format!(
                    "unknown setting `{other}`; known: scenarios, hard_only, side, max_turns, partner, partner_model, partner_key_env, judge, judge_model, judge_key_env"
                ))
            }
        }
    }
    Ok(s)
}

fn endpoint(url: &str, model: &str, key_env: &Option<String>) -> EndpointSpec {
    EndpointSpec {
        url: url.to_string(),
        model: model.to_string(),
        api_key_env: key_env.clone(),
        temperature: 0.7,
        timeout_s: 120.0,
        retries: 2,
        concurrency: 1,
    }
}

fn make_partner(s: &PlaySettings) -> Result<Box<dyn Partner>, String> {
    match &s.partner {
        None => Ok(Box::new(HotSeatPartner)),
        Some(url) if url.starts_with("http://") || url.starts_with("https://") => {
            let spec = endpoint(url, &s.partner_model, &s.partner_key_env);
            Ok(Box::new(
                EndpointPartner::from_spec(&spec).map_err(|e| e.to_string())?,
            ))
        }
        Some(path) => {
            let backend = load_backend(std::path::Path::new(path))?;
            Ok(Box::new(model_partner(std::sync::Arc::new(backend))))
        }
    }
}

/// `oprl env play sotopia [--seed N] [--set KEY=VALUE]...`: plays the combo `seed` picks
/// (train split) at the terminal. Returns the exit code.
pub fn play_command(sets: &[String], seed: u64) -> i32 {
    let run = || -> Result<(), String> {
        let settings = play_settings(sets)?;
        let (set, rubrics) = load_scenarios(&settings.spec).map_err(|e| e.to_string())?;
        let partner = make_partner(&settings)?;
        let judge: Option<Box<dyn EpisodeJudge>> = match (&settings.judge, rubrics) {
            (Some(url), _) => {
                let spec = endpoint(url, &settings.judge_model, &settings.judge_key_env);
                let client = crate::openai::ChatClient::from_spec(&EndpointSpec {
                    temperature: 0.0,
                    ..spec
                })
                .map_err(|e| e.to_string())?;
                Some(Box::new(LlmJudge::new(client, 1)))
            }
            (None, Some(r)) => Some(Box::new(RubricJudge::new(r))),
            (None, None) => None,
        };
        let mut env = SotopiaEnv::new(
            std::sync::Arc::new(set),
            None,
            &settings.spec,
            PromptStyle::Compact,
            partner,
        );
        let stdin = std::io::stdin();
        let mut input = stdin.lock();
        let mut out = std::io::stdout();
        let task = Task {
            split: Split::Train,
            index: seed,
        };
        play(&mut env, task, judge.as_deref(), &mut input, &mut out).map_err(|e| e.to_string())?;
        Ok(())
    };
    match run() {
        Ok(()) => EXIT_OK,
        Err(e) => fail(e, EXIT_USAGE),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::sotopia::CallbackPartner;
    use std::sync::Arc;

    #[test]
    fn a_person_can_play_a_whole_episode() {
        let spec = SotopiaSpec::default();
        let (set, _) = load_scenarios(&spec).unwrap();
        let partner = CallbackPartner::new(
            "agreeable partner",
            PromptStyle::Compact,
            Box::new(|_: &str| Ok("Yes, sure, that works for me.".to_string())),
        );
        let mut env = SotopiaEnv::new(
            Arc::new(set),
            None,
            &spec,
            PromptStyle::Compact,
            Box::new(partner),
        );
        let mut input: &[u8] = b"Could you please lend me your ladder?\n[leave]\n";
        let mut out = Vec::new();
        let judge = RubricJudge::embedded();
        let (ep, j) = play(
            &mut env,
            Task {
                split: Split::Train,
                index: 0,
            },
            Some(&judge),
            &mut input,
            &mut out,
        )
        .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(ep.turns.len(), 3);
        assert!(text.contains("Conversation Starts:"));
        assert!(text.contains("(you)"));
        assert!(text.contains("left"), "{text}");
        assert!(j.is_some());
    }

    #[test]
    fn play_settings_are_checked() {
        let s = play_settings(&[
            "side=second".into(),
            "partner=http://127.0.0.1:8000/v1".into(),
            "max_turns=6".into(),
        ])
        .unwrap();
        assert_eq!(s.spec.side, SotopiaSide::Second);
        assert_eq!(s.spec.max_turns, 6);
        assert!(play_settings(&["side=left".into()])
            .unwrap_err()
            .contains("first or second"));
        assert!(play_settings(&["colour=red".into()])
            .unwrap_err()
            .contains("unknown setting `colour`"));
        assert!(play_settings(&["max_turns=0".into()]).is_err());
        assert_eq!(play_command(&["partner=/no/such/dir".into()], 0), 2);
    }
}
