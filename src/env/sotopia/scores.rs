//! SOTOPIA's seven evaluation dimensions and the scores a judge gives each agent of an episode:
//! what every SOTOPIA judge (the embedded rubric judge here, an LLM in `reward::judge`)
//! produces.

use serde::{Deserialize, Serialize};

/// SOTOPIA's evaluation dimensions, in the order SOTOPIA lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dimension {
    Believability,
    Relationship,
    Knowledge,
    Secret,
    SocialRules,
    FinancialAndMaterialBenefits,
    Goal,
}

impl Dimension {
    pub const ALL: [Dimension; 7] = [
        Dimension::Believability,
        Dimension::Relationship,
        Dimension::Knowledge,
        Dimension::Secret,
        Dimension::SocialRules,
        Dimension::FinancialAndMaterialBenefits,
        Dimension::Goal,
    ];

    /// The JSON key SOTOPIA uses.
    pub fn key(self) -> &'static str {
        match self {
            Dimension::Believability => "believability",
            Dimension::Relationship => "relationship",
            Dimension::Knowledge => "knowledge",
            Dimension::Secret => "secret",
            Dimension::SocialRules => "social_rules",
            Dimension::FinancialAndMaterialBenefits => "financial_and_material_benefits",
            Dimension::Goal => "goal",
        }
    }

    /// Inclusive score range.
    pub fn range(self) -> (f64, f64) {
        match self {
            Dimension::Believability | Dimension::Knowledge | Dimension::Goal => (0.0, 10.0),
            Dimension::Relationship | Dimension::FinancialAndMaterialBenefits => (-5.0, 5.0),
            Dimension::Secret | Dimension::SocialRules => (-10.0, 0.0),
        }
    }

    /// Reads a key as a judge may write it (`social rules`, `Financial`, ...).
    pub fn from_key(key: &str) -> Option<Dimension> {
        let k = key.trim().to_ascii_lowercase().replace([' ', '-'], "_");
        Some(match k.as_str() {
            "believability" => Dimension::Believability,
            "relationship" => Dimension::Relationship,
            "knowledge" => Dimension::Knowledge,
            "secret" | "secrets" => Dimension::Secret,
            "social_rules" | "social_rule" => Dimension::SocialRules,
            "financial_and_material_benefits"
            | "financial"
            | "financial_benefits"
            | "financial_and_material" => Dimension::FinancialAndMaterialBenefits,
            "goal" | "goals" => Dimension::Goal,
            _ => return None,
        })
    }
}

/// One agent's scores on the seven dimensions.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SocialScores {
    pub believability: f64,
    pub relationship: f64,
    pub knowledge: f64,
    pub secret: f64,
    pub social_rules: f64,
    pub financial_and_material_benefits: f64,
    pub goal: f64,
}

impl SocialScores {
    pub fn get(&self, d: Dimension) -> f64 {
        match d {
            Dimension::Believability => self.believability,
            Dimension::Relationship => self.relationship,
            Dimension::Knowledge => self.knowledge,
            Dimension::Secret => self.secret,
            Dimension::SocialRules => self.social_rules,
            Dimension::FinancialAndMaterialBenefits => self.financial_and_material_benefits,
            Dimension::Goal => self.goal,
        }
    }

    pub fn get_mut(&mut self, d: Dimension) -> &mut f64 {
        match d {
            Dimension::Believability => &mut self.believability,
            Dimension::Relationship => &mut self.relationship,
            Dimension::Knowledge => &mut self.knowledge,
            Dimension::Secret => &mut self.secret,
            Dimension::SocialRules => &mut self.social_rules,
            Dimension::FinancialAndMaterialBenefits => &mut self.financial_and_material_benefits,
            Dimension::Goal => &mut self.goal,
        }
    }

    /// SOTOPIA's `overall_score`: the unweighted mean of the seven dimensions.
    pub fn overall(&self) -> f64 {
        Dimension::ALL.iter().map(|&d| self.get(d)).sum::<f64>() / Dimension::ALL.len() as f64
    }

    /// Errors naming the first dimension outside its range (or not finite).
    pub fn check_ranges(&self) -> Result<(), String> {
        for d in Dimension::ALL {
            let v = self.get(d);
            let (lo, hi) = d.range();
            if !v.is_finite() || v < lo || v > hi {
                return Err(format!("{} = {v} is outside {lo}..{hi}", d.key()));
            }
        }
        Ok(())
    }
}

/// Both agents' scores for one episode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Judgement {
    pub agents: [SocialScores; 2],
}
