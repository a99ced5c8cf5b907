//! `oprl env play sotopia`: a person plays the policy's side in the terminal against the
//! configured partner; at the end the judge's scores are shown.

use std::io::{BufRead, Write};

use crate::env::{EnvError, Environment, Task};
use crate::reward::judge::{EpisodeJudge, Judgement};

use super::episode::Episode;
use super::SotopiaEnv;

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
            Some(super::Termination::Left { agent }) => format!("{} left", ep.name(agent)),
            Some(super::Termination::Stale) => "nobody did anything for three turns".into(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::sotopia::{load_scenarios, CallbackPartner};
    use crate::env::Split;
    use crate::graph::{PartnerSpec, PromptStyle, SotopiaSide, SotopiaSpec};
    use crate::reward::rubric::RubricJudge;
    use std::sync::Arc;

    #[test]
    fn a_person_can_play_a_whole_episode() {
        let spec = SotopiaSpec {
            scenarios: None,
            hard_only: false,
            partner: PartnerSpec::SelfPlay,
            side: SotopiaSide::First,
            max_turns: 20,
        };
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
}
