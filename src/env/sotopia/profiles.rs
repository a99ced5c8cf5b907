//! SOTOPIA's scenario data: environment profiles, agent profiles and (environment, agent pair)
//! combos, read from the JSON files SOTOPIA's database exports, plus the SOTOPIA-hard subset.

use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

/// The SOTOPIA-hard subset: 14 environment profiles (pks) from the SOTOPIA paper.
pub const HARD_ENV_PKS: [&str; 14] = [
    "01H7VFHNV13MHN97GAH73E3KM8",
    "01H7VFHN5WVC5HKKVBHZBA553R",
    "01H7VFHN9W0WAFZCBT09PKJJNK",
    "01H7VFHPDZVVCDZR3AARA547CY",
    "01H7VFHPQQQY6H4DNC6NBQ8XTG",
    "01H7VFHN7WJK7VWVRZZTQ6DX9T",
    "01H7VFHPS5WJW2694R1MNC8JFY",
    "01H7VFHNN7XTR99319DS8KZCQM",
    "01H7VFHQ11NAMZS4A2RDGDB01V",
    "01H7VFHPSWGDGEYRP63H2DJKV0",
    "01H7VFHNF4G18PC9JHGRC8A1R6",
    "01H7VFHNNYH3W0VRWVY178K2TK",
    "01H7VFHP8AN5643B0NR0NP00VE",
    "01H7VFHN7A1ZX5KSMT2YN9RXC4",
];

/// How well the two agents know each other; decides which parts of the other's profile an
/// agent sees (SOTOPIA's `RelationshipType`, stored as its integer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub enum Relationship {
    Stranger,
    KnowByName,
    Acquaintance,
    Friend,
    Romantic,
    Family,
}

impl TryFrom<u8> for Relationship {
    type Error = String;
    fn try_from(value: u8) -> Result<Self, String> {
        Ok(match value {
            0 => Relationship::Stranger,
            1 => Relationship::KnowByName,
            2 => Relationship::Acquaintance,
            3 => Relationship::Friend,
            4 => Relationship::Romantic,
            5 => Relationship::Family,
            other => return Err(format!("unknown relationship {other} (expected 0..=5)")),
        })
    }
}

impl From<Relationship> for u8 {
    fn from(r: Relationship) -> u8 {
        r as u8
    }
}

impl Relationship {
    /// The phrase used in prompts ("friends", "strangers", ...).
    pub fn describe(self) -> &'static str {
        match self {
            Relationship::Stranger => "strangers",
            Relationship::KnowByName => "know each other by name",
            Relationship::Acquaintance => "acquaintances",
            Relationship::Friend => "friends",
            Relationship::Romantic => "in a romantic relationship",
            Relationship::Family => "family members",
        }
    }
}

/// A SOTOPIA environment profile: the scenario, one goal per agent, and their relationship.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnvProfile {
    pub pk: String,
    #[serde(default)]
    pub codename: String,
    #[serde(default)]
    pub source: String,
    pub scenario: String,
    pub agent_goals: Vec<String>,
    pub relationship: Relationship,
    #[serde(default)]
    pub age_constraint: Option<String>,
    #[serde(default)]
    pub occupation_constraint: Option<String>,
    #[serde(default)]
    pub agent_constraint: Option<serde_json::Value>,
}

/// A SOTOPIA agent profile (a character).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentProfile {
    pub pk: String,
    pub first_name: String,
    pub last_name: String,
    #[serde(default)]
    pub age: u32,
    #[serde(default)]
    pub occupation: String,
    #[serde(default)]
    pub gender: String,
    #[serde(default)]
    pub gender_pronoun: String,
    #[serde(default)]
    pub public_info: String,
    #[serde(default)]
    pub big_five: String,
    #[serde(default)]
    pub moral_values: Vec<String>,
    #[serde(default)]
    pub schwartz_personal_values: Vec<String>,
    #[serde(default)]
    pub personality_and_values: String,
    #[serde(default)]
    pub decision_making_style: String,
    #[serde(default)]
    pub secret: String,
    #[serde(default)]
    pub model_id: String,
    #[serde(default)]
    pub mbti: String,
}

impl AgentProfile {
    pub fn full_name(&self) -> String {
        format!("{} {}", self.first_name, self.last_name)
    }
}

/// One task: an environment profile played by a fixed pair of agents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvAgentCombo {
    pub pk: String,
    pub env_id: String,
    pub agent_ids: [String; 2],
}

/// A scenario-set loading error, naming the file and what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("cannot read SOTOPIA file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("SOTOPIA file {path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("SOTOPIA scenario set is inconsistent: {0}")]
    Inconsistent(String),
}

/// Environment profiles, agent profiles and combos; every combo refers to known profiles.
#[derive(Debug, Clone, PartialEq)]
pub struct ScenarioSet {
    pub envs: IndexMap<String, EnvProfile>,
    pub agents: IndexMap<String, AgentProfile>,
    pub combos: Vec<EnvAgentCombo>,
}

/// Reads a profile file: SOTOPIA exports profiles either as a map keyed by pk or as a plain
/// list. Each profile is read on its own so an error names the profile it is in.
fn parse_profiles<T: serde::de::DeserializeOwned>(
    path: &Path,
    text: &str,
    what: &str,
    pk: impl Fn(&T) -> &str,
) -> Result<IndexMap<String, T>, ScenarioError> {
    let bad = |message: String| ScenarioError::Parse {
        path: path.to_path_buf(),
        message,
    };
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
    let entries: Vec<(Option<String>, serde_json::Value)> = match value {
        serde_json::Value::Object(map) => map.into_iter().map(|(k, v)| (Some(k), v)).collect(),
        serde_json::Value::Array(list) => list.into_iter().map(|v| (None, v)).collect(),
        _ => return Err(bad(format!("expected a map or a list of {what} profiles"))),
    };
    let mut out = IndexMap::new();
    for (i, (key, v)) in entries.into_iter().enumerate() {
        let name = key.clone().unwrap_or_else(|| format!("#{i}"));
        let profile: T =
            serde_json::from_value(v).map_err(|e| bad(format!("{what} `{name}`: {e}")))?;
        let key = key.unwrap_or_else(|| pk(&profile).to_string());
        out.insert(key, profile);
    }
    Ok(out)
}

fn parse_file<T: serde::de::DeserializeOwned>(path: &Path, text: &str) -> Result<T, ScenarioError> {
    serde_json::from_str(text).map_err(|e| ScenarioError::Parse {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

fn read_file(path: &Path) -> Result<String, ScenarioError> {
    std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// The file names SOTOPIA's JSON export uses inside a scenario directory.
pub const ENVS_FILE: &str = "envs.json";
pub const AGENTS_FILE: &str = "agents.json";
pub const COMBOS_FILE: &str = "env_agent_combos.json";

impl ScenarioSet {
    /// Loads `envs.json`, `agents.json` and `env_agent_combos.json` from `dir`.
    pub fn load_dir(dir: &Path) -> Result<ScenarioSet, ScenarioError> {
        let envs_path = dir.join(ENVS_FILE);
        let agents_path = dir.join(AGENTS_FILE);
        let combos_path = dir.join(COMBOS_FILE);
        Self::from_texts(
            (&envs_path, &read_file(&envs_path)?),
            (&agents_path, &read_file(&agents_path)?),
            (&combos_path, &read_file(&combos_path)?),
        )
    }

    /// Parses the three files' texts; each is given with the path used in error messages.
    pub fn from_texts(
        envs: (&Path, &str),
        agents: (&Path, &str),
        combos: (&Path, &str),
    ) -> Result<ScenarioSet, ScenarioError> {
        let envs = parse_profiles(envs.0, envs.1, "environment", |e: &EnvProfile| &e.pk)?;
        let agents = parse_profiles(agents.0, agents.1, "agent", |a: &AgentProfile| &a.pk)?;
        let combos: Vec<EnvAgentCombo> = parse_file(combos.0, combos.1)?;
        let set = ScenarioSet {
            envs,
            agents,
            combos,
        };
        set.validate()?;
        Ok(set)
    }

    /// Checks keys match pks, every env has two goals, every combo names known profiles.
    fn validate(&self) -> Result<(), ScenarioError> {
        for (key, env) in &self.envs {
            if key != &env.pk {
                return Err(ScenarioError::Inconsistent(format!(
                    "environment keyed `{key}` has pk `{}`",
                    env.pk
                )));
            }
            if env.agent_goals.len() != 2 {
                return Err(ScenarioError::Inconsistent(format!(
                    "environment `{key}` has {} goals; SOTOPIA episodes need exactly 2",
                    env.agent_goals.len()
                )));
            }
        }
        for (key, agent) in &self.agents {
            if key != &agent.pk {
                return Err(ScenarioError::Inconsistent(format!(
                    "agent keyed `{key}` has pk `{}`",
                    agent.pk
                )));
            }
        }
        if self.combos.is_empty() {
            return Err(ScenarioError::Inconsistent("no env/agent combos".into()));
        }
        for combo in &self.combos {
            if !self.envs.contains_key(&combo.env_id) {
                return Err(ScenarioError::Inconsistent(format!(
                    "combo `{}` names unknown environment `{}`",
                    combo.pk, combo.env_id
                )));
            }
            for id in &combo.agent_ids {
                if !self.agents.contains_key(id) {
                    return Err(ScenarioError::Inconsistent(format!(
                        "combo `{}` names unknown agent `{id}`",
                        combo.pk
                    )));
                }
            }
            if combo.agent_ids[0] == combo.agent_ids[1] {
                return Err(ScenarioError::Inconsistent(format!(
                    "combo `{}` pairs agent `{}` with itself",
                    combo.pk, combo.agent_ids[0]
                )));
            }
        }
        Ok(())
    }

    /// The set restricted to combos whose environment is in `pks` (e.g. [`HARD_ENV_PKS`]).
    /// Errors if nothing is left, since an empty task set cannot be trained on.
    pub fn restrict_to(&self, pks: &[&str]) -> Result<ScenarioSet, ScenarioError> {
        let envs: IndexMap<String, EnvProfile> = self
            .envs
            .iter()
            .filter(|(k, _)| pks.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let combos: Vec<EnvAgentCombo> = self
            .combos
            .iter()
            .filter(|c| envs.contains_key(&c.env_id))
            .cloned()
            .collect();
        if combos.is_empty() {
            return Err(ScenarioError::Inconsistent(
                "no combo uses any of the requested environments".into(),
            ));
        }
        Ok(ScenarioSet {
            envs,
            agents: self.agents.clone(),
            combos,
        })
    }

    /// The SOTOPIA-hard subset.
    pub fn hard(&self) -> Result<ScenarioSet, ScenarioError> {
        self.restrict_to(&HARD_ENV_PKS)
    }

    /// The resolved profiles of combo `index` (wrapping around the combo list).
    pub fn combo(&self, index: usize) -> ResolvedCombo<'_> {
        let combo = &self.combos[index % self.combos.len()];
        ResolvedCombo {
            combo,
            env: &self.envs[&combo.env_id],
            agents: [
                &self.agents[&combo.agent_ids[0]],
                &self.agents[&combo.agent_ids[1]],
            ],
        }
    }
}

/// A combo with its profiles looked up.
#[derive(Debug, Clone, Copy)]
pub struct ResolvedCombo<'a> {
    pub combo: &'a EnvAgentCombo,
    pub env: &'a EnvProfile,
    pub agents: [&'a AgentProfile; 2],
}

#[cfg(test)]
mod tests {
    use super::*;

    fn real_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/sotopia")
    }

    #[test]
    fn loads_the_real_sotopia_files() {
        let set = ScenarioSet::load_dir(&real_dir()).unwrap();
        assert_eq!(set.envs.len(), 90);
        assert_eq!(set.agents.len(), 40);
        assert_eq!(set.combos.len(), 450);
        let hard = set.hard().unwrap();
        assert_eq!(hard.envs.len(), 14);
        // 5 combos per environment in the export.
        assert_eq!(hard.combos.len(), 70);
        let divide = &set.envs["01H7VFHP8AN5643B0NR0NP00VE"];
        assert_eq!(divide.codename, "divide_items");
        assert_eq!(divide.relationship, Relationship::Friend);
        let oliver = &set.agents["01H5TNE5P6KZKR2AEY6SZB83H0"];
        assert_eq!(oliver.full_name(), "Oliver Thompson");
        assert_eq!(oliver.age, 45);
    }

    #[test]
    fn rejects_unknown_references_and_relationships() {
        let p = Path::new("x.json");
        let env = r#"{"e1": {"pk": "e1", "scenario": "s", "agent_goals": ["a", "b"], "relationship": 2}}"#;
        let agents = r#"[{"pk": "a1", "first_name": "A", "last_name": "B"},
                         {"pk": "a2", "first_name": "C", "last_name": "D"}]"#;
        let good = r#"[{"pk": "c", "env_id": "e1", "agent_ids": ["a1", "a2"]}]"#;
        let set = ScenarioSet::from_texts((p, env), (p, agents), (p, good)).unwrap();
        assert_eq!(set.combo(3).agents[1].first_name, "C");
        let bad = r#"[{"pk": "c", "env_id": "e1", "agent_ids": ["a1", "zz"]}]"#;
        let err = ScenarioSet::from_texts((p, env), (p, agents), (p, bad)).unwrap_err();
        assert!(err.to_string().contains("unknown agent `zz`"), "{err}");
        let env9 = env.replace("\"relationship\": 2", "\"relationship\": 9");
        let err = ScenarioSet::from_texts((p, &env9), (p, agents), (p, good)).unwrap_err();
        assert!(
            err.to_string()
                .contains("environment `e1`: unknown relationship 9"),
            "{err}"
        );
    }
}
