//! One SOTOPIA episode: action types and their parsing, the per-agent background (own goal
//! only, the other's profile as far as the relationship reveals it), round-robin turns, the
//! termination rules, and the two prompt renderings (SOTOPIA's agent prompt and a compact one
//! for small models).

use serde::{Deserialize, Serialize};

use super::profiles::{AgentProfile, EnvProfile, Relationship, ResolvedCombo};
use crate::model::chat::Message;

/// SOTOPIA's action types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ActionType {
    #[serde(rename = "none")]
    None,
    #[serde(rename = "speak")]
    Speak,
    #[serde(rename = "non-verbal communication")]
    NonVerbal,
    #[serde(rename = "action")]
    Action,
    #[serde(rename = "leave")]
    Leave,
}

impl ActionType {
    pub const ALL: [ActionType; 5] = [
        ActionType::None,
        ActionType::Speak,
        ActionType::NonVerbal,
        ActionType::Action,
        ActionType::Leave,
    ];

    /// SOTOPIA's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ActionType::None => "none",
            ActionType::Speak => "speak",
            ActionType::NonVerbal => "non-verbal communication",
            ActionType::Action => "action",
            ActionType::Leave => "leave",
        }
    }

    /// Reads SOTOPIA's spelling and the usual variants models write.
    pub fn parse(text: &str) -> Option<ActionType> {
        let t = text.trim().to_ascii_lowercase().replace(['_', ' '], "-");
        Some(match t.as_str() {
            "none" | "did-nothing" | "nothing" => ActionType::None,
            "speak" | "say" | "talk" => ActionType::Speak,
            "non-verbal-communication" | "non-verbal" | "nonverbal" | "gesture" => {
                ActionType::NonVerbal
            }
            "action" | "act" => ActionType::Action,
            "leave" => ActionType::Leave,
            _ => return None,
        })
    }

    /// Whether the action carries an argument (utterance, gesture or physical action).
    pub fn takes_argument(self) -> bool {
        matches!(
            self,
            ActionType::Speak | ActionType::NonVerbal | ActionType::Action
        )
    }
}

/// What an agent does on its turn.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentAction {
    pub action_type: ActionType,
    pub argument: String,
}

impl AgentAction {
    pub fn new(action_type: ActionType, argument: impl Into<String>) -> AgentAction {
        let argument = if action_type.takes_argument() {
            argument.into()
        } else {
            String::new()
        };
        AgentAction {
            action_type,
            argument,
        }
    }

    pub fn none() -> AgentAction {
        AgentAction::new(ActionType::None, "")
    }

    /// SOTOPIA's rendering after the agent's name: `said: "..."`, `[action] ...`, ...
    pub fn to_natural_language(&self) -> String {
        match self.action_type {
            ActionType::None => "did nothing".to_string(),
            ActionType::Speak => format!("said: \"{}\"", self.argument),
            ActionType::NonVerbal | ActionType::Action => {
                format!("[{}] {}", self.action_type.as_str(), self.argument)
            }
            ActionType::Leave => "left the conversation".to_string(),
        }
    }

    /// The compact rendering, which is also what the compact prompt asks the model to write:
    /// plain text to speak, `*gesture*`, `[action] ...`, `[leave]`, `[none]`.
    pub fn to_compact(&self) -> String {
        match self.action_type {
            ActionType::Speak => self.argument.clone(),
            ActionType::NonVerbal => format!("*{}*", self.argument),
            ActionType::Action => format!("[action] {}", self.argument),
            ActionType::Leave => "[leave]".to_string(),
            ActionType::None => "[none]".to_string(),
        }
    }

    /// The JSON form of SOTOPIA's agent output.
    pub fn to_json(&self) -> String {
        serde_json::json!({"action_type": self.action_type.as_str(), "argument": self.argument})
            .to_string()
    }
}

/// A model's text turned into an action. `valid` is false when the text could not be read as
/// an admissible action; the action is then `none`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedAction {
    pub action: AgentAction,
    pub valid: bool,
}

/// Strips a Markdown code fence (```json ... ```) around a reply, if there is one.
pub fn strip_code_fence(text: &str) -> &str {
    let t = text.trim();
    let Some(rest) = t.strip_prefix("```") else {
        return t;
    };
    // Drop the info string (`json`) on the opening line.
    let body = match rest.find('\n') {
        Some(nl) => &rest[nl + 1..],
        None => rest,
    };
    body.trim_end().strip_suffix("```").unwrap_or(body).trim()
}

/// Parses a model's turn. Accepted forms, tried in order:
/// 1. SOTOPIA's JSON `{"action_type": "...", "argument": "..."}` (fenced or with text around it);
/// 2. the compact forms `[leave]`, `[none]`, `[action] ...`, `[non-verbal communication] ...`,
///    `*gesture*`;
/// 3. any other non-empty text, taken as speech (only its first line).
///
/// Empty text, an unknown action type, or a speak/gesture/action without an argument are invalid.
pub fn parse_action(text: &str) -> ParsedAction {
    let invalid = ParsedAction {
        action: AgentAction::none(),
        valid: false,
    };
    let body = strip_code_fence(text);
    if let (Some(open), Some(close)) = (body.find('{'), body.rfind('}')) {
        if open < close {
            if let Ok(serde_json::Value::Object(map)) =
                serde_json::from_str::<serde_json::Value>(&body[open..=close])
            {
                if let Some(kind) = map.get("action_type") {
                    let Some(action_type) = kind.as_str().and_then(ActionType::parse) else {
                        return invalid;
                    };
                    let argument = map
                        .get("argument")
                        .and_then(|a| a.as_str())
                        .unwrap_or("")
                        .trim()
                        .to_string();
                    return checked(AgentAction::new(action_type, argument));
                }
            }
        }
    }
    let line = body
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim();
    if line.is_empty() {
        return invalid;
    }
    if let Some(rest) = line.strip_prefix('[') {
        if let Some(close) = rest.find(']') {
            if let Some(action_type) = ActionType::parse(&rest[..close]) {
                return checked(AgentAction::new(action_type, rest[close + 1..].trim()));
            }
        }
    }
    if line.len() >= 2 && line.starts_with('*') && line.ends_with('*') {
        return checked(AgentAction::new(
            ActionType::NonVerbal,
            line.trim_matches('*').trim(),
        ));
    }
    checked(AgentAction::new(ActionType::Speak, line))
}

fn checked(action: AgentAction) -> ParsedAction {
    let valid = !action.action_type.takes_argument() || !action.argument.is_empty();
    if valid {
        ParsedAction {
            action,
            valid: true,
        }
    } else {
        ParsedAction {
            action: AgentAction::none(),
            valid: false,
        }
    }
}

/// One turn of the conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Turn {
    /// SOTOPIA's turn number, from 0.
    pub turn_number: usize,
    /// 0 or 1: which agent acted.
    pub agent: usize,
    pub action: AgentAction,
    /// Whether the agent's text parsed into an admissible action.
    pub valid: bool,
}

/// Why an episode ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Termination {
    /// `max_turns` turns were played.
    MaxTurns,
    /// An agent chose `leave`.
    Left { agent: usize },
    /// More than [`MAX_STALE_TURNS`] consecutive `none` actions.
    Stale,
}

/// SOTOPIA's `max_stale_turn`: the episode ends when more than this many consecutive turns
/// were `none`.
pub const MAX_STALE_TURNS: usize = 2;

/// SOTOPIA's rule-based termination, applied after every turn: the turn limit, a `leave`
/// (with two agents, one leaving leaves fewer than two active), or a stale conversation.
pub fn termination(turns: &[Turn], max_turns: usize) -> Option<Termination> {
    if let Some(t) = turns
        .iter()
        .find(|t| t.action.action_type == ActionType::Leave)
    {
        return Some(Termination::Left { agent: t.agent });
    }
    let stale = turns
        .iter()
        .rev()
        .take_while(|t| t.action.action_type == ActionType::None)
        .count();
    if stale > MAX_STALE_TURNS {
        return Some(Termination::Stale);
    }
    if turns.len() >= max_turns {
        return Some(Termination::MaxTurns);
    }
    None
}

/// SOTOPIA's three rendered tags: their content is shown to the agent, the markup is not.
const RENDERED_TAGS: [&str; 3] = ["extra_info", "clarification_hint", "strategy_hint"];

/// Removes the markup of SOTOPIA's rendered tags (`<extra_info>...</extra_info>`), keeping
/// their content, as SOTOPIA's renderer does for the agent that owns the goal.
pub fn render_goal(goal: &str) -> String {
    let mut out = goal.to_string();
    for tag in RENDERED_TAGS {
        out = out
            .replace(&format!("<{tag}>"), " ")
            .replace(&format!("</{tag}>"), " ");
    }
    // Collapse the spaces the removed markup leaves, but keep line breaks.
    out.split('\n')
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join("\n")
        .replace("( ", "(")
        .replace(" )", ")")
}

fn gender_adjective(gender: &str) -> &'static str {
    match gender {
        "Man" => "male",
        "Woman" => "female",
        "Nonbinary" => "nonbinary",
        _ => "",
    }
}

/// The public part of a profile: name, age, gender, occupation, pronouns, public info.
fn public_part(p: &AgentProfile) -> String {
    let mut who = format!("{} is a {}-year-old", p.full_name(), p.age);
    let adj = gender_adjective(&p.gender);
    if !adj.is_empty() {
        who.push(' ');
        who.push_str(adj);
    }
    if !p.occupation.is_empty() {
        who.push(' ');
        who.push_str(&p.occupation.to_lowercase());
    }
    who.push('.');
    if !p.gender_pronoun.is_empty() {
        who.push_str(&format!(" {} pronouns.", p.gender_pronoun));
    }
    if !p.public_info.is_empty() {
        who.push(' ');
        who.push_str(&p.public_info);
    }
    who
}

fn personality_part(p: &AgentProfile) -> String {
    format!(
        "Personality and values description: {}",
        p.personality_and_values
    )
}

fn secret_part(p: &AgentProfile) -> String {
    format!("{}'s secrets: {}", p.first_name, p.secret)
}

/// What `profile` looks like to its own agent (`own = true`: everything, secrets included) or
/// to the other agent, who sees what SOTOPIA's relationship levels reveal: strangers nothing,
/// name-only acquaintances the name, acquaintances the public part, friends, partners and
/// family also the personality. Nobody but the owner sees the secret. `None` = "Unknown".
pub fn profile_view(
    profile: &AgentProfile,
    relationship: Relationship,
    own: bool,
) -> Option<String> {
    if own {
        return Some(format!(
            "{} {} {}",
            public_part(profile),
            personality_part(profile),
            secret_part(profile)
        ));
    }
    match relationship {
        Relationship::Stranger => None,
        Relationship::KnowByName => Some(profile.full_name()),
        Relationship::Acquaintance => Some(public_part(profile)),
        Relationship::Friend | Relationship::Romantic | Relationship::Family => Some(format!(
            "{} {}",
            public_part(profile),
            personality_part(profile)
        )),
    }
}

/// A whole episode: who plays, what was said, how it ended. It is what judges read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Episode {
    /// The combo's pk.
    pub combo: String,
    pub env: EnvProfile,
    pub agents: [AgentProfile; 2],
    /// Which agent (0 or 1) the trained policy plays.
    pub policy_agent: usize,
    pub max_turns: usize,
    pub turns: Vec<Turn>,
    pub termination: Option<Termination>,
}

impl Episode {
    pub fn new(combo: &ResolvedCombo<'_>, policy_agent: usize, max_turns: usize) -> Episode {
        Episode {
            combo: combo.combo.pk.clone(),
            env: combo.env.clone(),
            agents: [combo.agents[0].clone(), combo.agents[1].clone()],
            policy_agent,
            max_turns,
            turns: Vec::new(),
            termination: None,
        }
    }

    pub fn done(&self) -> bool {
        self.termination.is_some()
    }

    /// Whose turn it is (round robin, agent 0 first).
    pub fn next_agent(&self) -> usize {
        self.turns.len() % 2
    }

    pub fn name(&self, agent: usize) -> String {
        self.agents[agent].full_name()
    }

    /// Records `agent`'s action and applies the termination rules. Errors (without changing
    /// anything) when the episode is over or it is not `agent`'s turn.
    pub fn push(&mut self, agent: usize, parsed: ParsedAction) -> Result<(), String> {
        if self.done() {
            return Err("the episode is over".into());
        }
        if agent != self.next_agent() {
            return Err(format!(
                "it is agent {}'s turn, not agent {agent}'s",
                self.next_agent()
            ));
        }
        self.turns.push(Turn {
            turn_number: self.turns.len(),
            agent,
            action: parsed.action,
            valid: parsed.valid,
        });
        self.termination = termination(&self.turns, self.max_turns);
        Ok(())
    }

    /// SOTOPIA's background. `viewer = Some(i)`: what agent `i` sees (its own goal, the other's
    /// goal as "Unknown", profiles as [`profile_view`] allows); `None`: the omniscient view the
    /// judge reads (both goals, both full profiles).
    pub fn background(&self, viewer: Option<usize>) -> String {
        let names = [self.name(0), self.name(1)];
        let mut out = format!(
            "Here is the context of this interaction:\nScenario: {}\nParticipants: {} and {}\n",
            render_goal(&self.env.scenario),
            names[0],
            names[1]
        );
        for (i, name) in names.iter().enumerate() {
            let own = viewer.is_none_or(|v| v == i);
            let view = profile_view(&self.agents[i], self.env.relationship, own);
            out.push_str(&format!(
                "{name}'s background: {}\n",
                view.as_deref().unwrap_or("Unknown")
            ));
        }
        for (i, name) in names.iter().enumerate() {
            let goal = if viewer.is_none_or(|v| v == i) {
                render_goal(&self.env.agent_goals[i])
            } else {
                "Unknown".to_string()
            };
            out.push_str(&format!("{name}'s goal: {goal}\n"));
        }
        out
    }

    /// The conversation so far, one `Turn #n: Name ...` line per turn (SOTOPIA's observation
    /// lines).
    pub fn history_lines(&self) -> String {
        self.turns
            .iter()
            .map(|t| {
                format!(
                    "Turn #{}: {} {}\n",
                    t.turn_number,
                    self.name(t.agent),
                    t.action.to_natural_language()
                )
            })
            .collect()
    }

    /// The transcript a judge reads: the omniscient background, then `Turn #n` markers and
    /// every action except `did nothing` (SOTOPIA's evaluator filters those).
    pub fn judge_history(&self) -> String {
        let mut out = self.background(None);
        for t in &self.turns {
            out.push_str(&format!("Turn #{}\n", t.turn_number));
            if t.action.action_type != ActionType::None {
                out.push_str(&format!(
                    "{} {}\n",
                    self.name(t.agent),
                    t.action.to_natural_language()
                ));
            }
        }
        out
    }

    /// SOTOPIA's agent prompt for `agent` (for models that follow instructions).
    pub fn sotopia_prompt(&self, agent: usize) -> String {
        format!(
            "{}\nConversation Starts:\n{}\nYou are at Turn #{}. {}",
            self.role_play_intro(agent),
            self.history_lines(),
            self.turns.len(),
            answer_format()
        )
    }

    /// SOTOPIA's agent prompt for `agent` as a chat, for a model that reads its chat template:
    /// the instructions, `agent`'s view of the background and the answer format as the system
    /// message, then the conversation as turns: the other agent's actions (SOTOPIA's `Turn #n`
    /// lines) in user messages that end by saying whose turn it is, and `agent`'s own actions
    /// as its assistant answers (SOTOPIA's JSON). Each turn's chat extends the previous one.
    pub fn sotopia_messages(&self, agent: usize) -> Vec<Message> {
        let system = format!("{}\n{}", self.role_play_intro(agent), answer_format());
        let mut messages = vec![Message::new("system", system)];
        let mut pending = String::from("Conversation Starts:\n");
        for t in &self.turns {
            if t.agent == agent {
                pending.push_str(&format!("You are at Turn #{}.", t.turn_number));
                messages.push(Message::new("user", std::mem::take(&mut pending)));
                messages.push(Message::new("assistant", t.action.to_json()));
            } else {
                pending.push_str(&format!(
                    "Turn #{}: {} {}\n",
                    t.turn_number,
                    self.name(t.agent),
                    t.action.to_natural_language()
                ));
            }
        }
        pending.push_str(&format!("You are at Turn #{}.", self.turns.len()));
        messages.push(Message::new("user", pending));
        messages
    }

    /// The opening of SOTOPIA's agent prompt: who `agent` plays, then its view of the background.
    fn role_play_intro(&self, agent: usize) -> String {
        let name = self.name(agent);
        format!(
            "Imagine you are {name}, your task is to act/speak as {name} would, keeping in mind \
{name}'s social goal.\nYou can find {name}'s goal (or background) in the 'Here is the context of \
the interaction' field.\nNote that {name}'s goal is only visible to you.\nYou should try your best \
to achieve {name}'s goal in a way that align with their character traits.\nAdditionally, \
maintaining the conversation's naturalness and realism is essential (e.g., do not repeat what \
other people has already said before).\n\n{}",
            self.background(Some(agent)),
        )
    }

    /// A short prompt for small models trained from scratch: scenario, who the agent is, its
    /// goal, the conversation as `Name: text` lines, and `Name:` to continue. The model answers
    /// in the compact action forms (see [`parse_action`]).
    pub fn compact_prompt(&self, agent: usize) -> String {
        let me = &self.agents[agent];
        let other = &self.agents[1 - agent];
        let mut out = format!(
            "{}\nYou are {}. {} and you are {}.\nYour goal: {}\n",
            render_goal(&self.env.scenario),
            me.first_name,
            other.first_name,
            self.env.relationship.describe(),
            render_goal(&self.env.agent_goals[agent])
        );
        for t in &self.turns {
            out.push_str(&format!(
                "{}: {}\n",
                self.agents[t.agent].first_name,
                t.action.to_compact()
            ));
        }
        out.push_str(&format!("{}:", me.first_name));
        out
    }
}

/// The end of SOTOPIA's agent prompt: the action types and the JSON answer they take.
fn answer_format() -> String {
    let actions = ActionType::ALL
        .iter()
        .map(|a| a.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "Your available action types are\n{actions}.\nNote: You can \"leave\" this conversation \
if 1. you have achieved your social goals, 2. this conversation makes you uncomfortable, 3. you \
find it uninteresting/you lose your patience, 4. or for other reasons you want to leave.\n\nPlease \
only generate a JSON string including the action type and the argument.\nYour action should \
follow the given format: a JSON object with two fields, \"action_type\" (one of the available \
action types) and \"argument\" (the utterance if you speak, the expression or gesture if you \
choose non-verbal communication, the physical action if you choose action, an empty string \
otherwise), e.g. {{\"action_type\": \"speak\", \"argument\": \"Hi, how are you?\"}}\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::sotopia::profiles::EnvAgentCombo;

    fn agent(pk: &str, first: &str, secret: &str) -> AgentProfile {
        AgentProfile {
            pk: pk.into(),
            first_name: first.into(),
            last_name: "Doe".into(),
            age: 30,
            occupation: "Baker".into(),
            gender: "Woman".into(),
            gender_pronoun: "She/her".into(),
            public_info: format!("{first} bakes bread."),
            big_five: String::new(),
            moral_values: vec![],
            schwartz_personal_values: vec![],
            personality_and_values: format!("{first} is patient."),
            decision_making_style: String::new(),
            secret: secret.into(),
            model_id: String::new(),
            mbti: String::new(),
        }
    }

    fn episode(relationship: Relationship) -> Episode {
        let env = EnvProfile {
            pk: "e".into(),
            codename: "c".into(),
            source: String::new(),
            scenario: "Two neighbours share a garden".into(),
            agent_goals: vec![
                "Get the sunny bed (<extra_info>Extra information: you grow tomatoes</extra_info>)"
                    .into(),
                "Keep the sunny bed <strategy_hint>Hint: offer herbs</strategy_hint>".into(),
            ],
            relationship,
            age_constraint: None,
            occupation_constraint: None,
            agent_constraint: None,
        };
        let agents = [
            agent("a", "Ann", "ANN-SECRET"),
            agent("b", "Bea", "BEA-SECRET"),
        ];
        let combo = EnvAgentCombo {
            pk: "k".into(),
            env_id: "e".into(),
            agent_ids: ["a".into(), "b".into()],
        };
        let resolved = ResolvedCombo {
            combo: &combo,
            env: &env,
            agents: [&agents[0], &agents[1]],
        };
        Episode::new(&resolved, 0, 20)
    }

    fn turn(action_type: ActionType) -> ParsedAction {
        ParsedAction {
            action: AgentAction::new(action_type, "x"),
            valid: true,
        }
    }

    #[test]
    fn each_agent_sees_only_its_own_goal_and_secret() {
        let ep = episode(Relationship::Friend);
        let ann = ep.background(Some(0));
        assert!(ann
            .contains("Ann Doe's goal: Get the sunny bed (Extra information: you grow tomatoes)"));
        assert!(ann.contains("Bea Doe's goal: Unknown"));
        assert!(!ann.contains("Keep the sunny bed"));
        assert!(ann.contains("ANN-SECRET"));
        assert!(!ann.contains("BEA-SECRET"));
        // Friends see the other's personality.
        assert!(ann.contains("Bea is patient."));
        let bea = ep.background(Some(1));
        assert!(bea.contains("Ann Doe's goal: Unknown"));
        assert!(bea.contains("Bea Doe's goal: Keep the sunny bed Hint: offer herbs"));
        assert!(!bea.contains("ANN-SECRET") && bea.contains("BEA-SECRET"));
        // The judge sees everything.
        let all = ep.background(None);
        assert!(all.contains("Get the sunny bed") && all.contains("Keep the sunny bed"));
        assert!(all.contains("ANN-SECRET") && all.contains("BEA-SECRET"));
        assert!(!all.contains("<extra_info>"));
        // The prompts carry the same visibility.
        assert!(!ep.sotopia_prompt(0).contains("Keep the sunny bed"));
        assert!(!ep.compact_prompt(1).contains("Get the sunny bed"));
    }

    #[test]
    fn the_chat_form_holds_the_conversation_as_turns() {
        let mut ep = episode(Relationship::Friend);
        ep.push(0, turn(ActionType::Speak)).unwrap();
        ep.push(1, turn(ActionType::NonVerbal)).unwrap();
        let roles = |m: &[Message]| m.iter().map(|m| m.role.clone()).collect::<Vec<_>>();
        // Ann (agent 0) spoke first: her answer is an assistant turn, Bea's gesture a user line.
        let ann = ep.sotopia_messages(0);
        assert_eq!(roles(&ann), ["system", "user", "assistant", "user"]);
        assert!(ann[0].content.starts_with("Imagine you are Ann Doe"));
        assert!(ann[0].content.contains("Ann Doe's goal: Get the sunny bed"));
        assert!(!ann[0].content.contains("Keep the sunny bed"));
        assert!(ann[0].content.ends_with("\"Hi, how are you?\"}\n"));
        assert_eq!(ann[1].content, "Conversation Starts:\nYou are at Turn #0.");
        assert_eq!(ann[2].content, r#"{"action_type":"speak","argument":"x"}"#);
        assert_eq!(
            ann[3].content,
            "Turn #1: Bea Doe [non-verbal communication] x\nYou are at Turn #2."
        );
        // Bea sees Ann's turn as the other agent's, and her own gesture as her answer.
        let bea = ep.sotopia_messages(1);
        assert_eq!(roles(&bea), ["system", "user", "assistant", "user"]);
        assert_eq!(
            bea[1].content,
            "Conversation Starts:\nTurn #0: Ann Doe said: \"x\"\nYou are at Turn #1."
        );
        // Every turn's chat extends the previous turn's.
        let before = {
            let mut e = episode(Relationship::Friend);
            e.push(0, turn(ActionType::Speak)).unwrap();
            e.sotopia_messages(1)
        };
        assert_eq!(&bea[..before.len()], &before[..]);
    }

    #[test]
    fn relationship_decides_how_much_of_the_other_profile_shows() {
        let stranger = episode(Relationship::Stranger).background(Some(0));
        assert!(stranger.contains("Bea Doe's background: Unknown"));
        let by_name = episode(Relationship::KnowByName).background(Some(0));
        assert!(by_name.contains("Bea Doe's background: Bea Doe\n"));
        let acquaintance = episode(Relationship::Acquaintance).background(Some(0));
        assert!(acquaintance.contains(
            "Bea Doe's background: Bea Doe is a 30-year-old female baker. She/her pronouns. Bea bakes bread.\n"
        ));
        assert!(!acquaintance.contains("Bea is patient."));
        let family = episode(Relationship::Family).background(Some(0));
        assert!(family.contains("Bea is patient.") && !family.contains("BEA-SECRET"));
    }

    #[test]
    fn ends_after_max_turns() {
        let mut ep = episode(Relationship::Friend);
        for i in 0..19 {
            ep.push(i % 2, turn(ActionType::Speak)).unwrap();
            assert!(!ep.done(), "ended early at turn {i}");
        }
        ep.push(1, turn(ActionType::Speak)).unwrap();
        assert_eq!(ep.termination, Some(Termination::MaxTurns));
        assert!(ep.push(0, turn(ActionType::Speak)).is_err());
    }

    #[test]
    fn ends_on_leave_and_on_three_consecutive_nones() {
        let mut ep = episode(Relationship::Friend);
        ep.push(0, turn(ActionType::Speak)).unwrap();
        ep.push(1, turn(ActionType::Leave)).unwrap();
        assert_eq!(ep.termination, Some(Termination::Left { agent: 1 }));

        let mut ep = episode(Relationship::Friend);
        ep.push(0, turn(ActionType::None)).unwrap();
        ep.push(1, turn(ActionType::None)).unwrap();
        ep.push(0, turn(ActionType::Speak)).unwrap();
        ep.push(1, turn(ActionType::None)).unwrap();
        ep.push(0, turn(ActionType::None)).unwrap();
        assert!(!ep.done(), "two consecutive nones do not end it");
        ep.push(1, turn(ActionType::None)).unwrap();
        assert_eq!(ep.termination, Some(Termination::Stale));
    }

    #[test]
    fn turns_alternate() {
        let mut ep = episode(Relationship::Friend);
        assert!(ep.push(1, turn(ActionType::Speak)).is_err());
        ep.push(0, turn(ActionType::Speak)).unwrap();
        assert_eq!(ep.next_agent(), 1);
    }

    #[test]
    fn parses_every_action_form() {
        let p =
            parse_action("```json\n{\"action_type\": \"speak\", \"argument\": \"Hi there\"}\n```");
        assert_eq!(p.action, AgentAction::new(ActionType::Speak, "Hi there"));
        assert!(p.valid);
        let p = parse_action(
            "Sure: {\"action_type\": \"non-verbal communication\", \"argument\": \"nods\"}",
        );
        assert_eq!(p.action.action_type, ActionType::NonVerbal);
        let p = parse_action("{\"action_type\": \"leave\", \"argument\": \"bye\"}");
        assert_eq!(p.action, AgentAction::new(ActionType::Leave, ""));
        assert!(!parse_action("{\"action_type\": \"dance\", \"argument\": \"x\"}").valid);
        assert!(!parse_action("{\"action_type\": \"speak\", \"argument\": \"\"}").valid);
        assert_eq!(
            parse_action("[leave]").action.action_type,
            ActionType::Leave
        );
        assert_eq!(
            parse_action(" [none] ").action.action_type,
            ActionType::None
        );
        let p = parse_action("[action] hands over the keys");
        assert_eq!(
            p.action,
            AgentAction::new(ActionType::Action, "hands over the keys")
        );
        assert_eq!(
            parse_action("*smiles*").action,
            AgentAction::new(ActionType::NonVerbal, "smiles")
        );
        let p = parse_action("Hello Bea\nBea: hi");
        assert_eq!(p.action, AgentAction::new(ActionType::Speak, "Hello Bea"));
        assert!(!parse_action("   \n ").valid);
        assert!(!parse_action("[action]").valid);
        // Compact rendering parses back to the same action.
        for a in ActionType::ALL {
            let action = AgentAction::new(a, "look up");
            assert_eq!(parse_action(&action.to_compact()).action, action);
            assert_eq!(parse_action(&action.to_json()).action, action);
        }
    }

    #[test]
    fn judge_history_drops_nothing_turns() {
        let mut ep = episode(Relationship::Friend);
        ep.push(0, parse_action("Hello")).unwrap();
        ep.push(1, parse_action("[none]")).unwrap();
        ep.push(0, parse_action("*waves*")).unwrap();
        let h = ep.judge_history();
        assert!(h.ends_with(
            "Turn #0\nAnn Doe said: \"Hello\"\nTurn #1\nTurn #2\nAnn Doe [non-verbal communication] waves\n"
        ));
        assert_eq!(
            ep.compact_prompt(1)
                .lines()
                .rev()
                .take(4)
                .collect::<Vec<_>>(),
            vec!["Bea:", "Ann: *waves*", "Bea: [none]", "Ann: Hello"]
        );
    }
}
