//! The WebShop product catalogue: loading WebShop's product files (the raw scraped list, or the
//! search-engine JSONL `{id, contents, product}`) plus its attribute/instruction file, with the
//! normalisation of WebShop's `engine.load_products`.

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::Path;

/// The attribute WebShop gives a product missing from the attribute file.
pub const DUMMY_ATTR: &str = "DUMMY_ATTR";

/// One review, as shown on the Reviews sub-page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Review {
    pub title: String,
    pub score: i64,
    pub body: String,
}

/// One product, with the fields WebShop's pages, search index and reward read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Product {
    pub asin: String,
    /// The raw `name` (used by the type reward's title nouns).
    pub name: String,
    /// `Title` (= `name` in WebShop's loader).
    pub title: String,
    pub description: String,
    pub bullet_points: Vec<String>,
    /// WebShop's coarse category (`beauty`, `garden`, ...).
    pub category: String,
    /// The scraping query, lower-cased and stripped.
    pub query: String,
    /// Amazon's breadcrumb, parts separated by `›`.
    pub product_category: String,
    /// One price, or a `[low, high]` range.
    pub pricing: Vec<f64>,
    /// The price tag shown on pages: `$12.5` or `$10.0 to $20.0`.
    pub price_tag: String,
    pub rating: String,
    pub reviews: Vec<Review>,
    /// Option name (lower-cased) -> values (lower-cased, `/` -> ` | `), in file order.
    pub options: IndexMap<String, Vec<String>>,
    pub attributes: Vec<String>,
    /// Synthetic instruction from the attribute file (`None`: the product yields no goal).
    pub instruction_text: Option<String>,
    pub instruction_attributes: Option<Vec<String>>,
    pub main_image: String,
}

/// What a product file or attribute file failed on.
#[derive(Debug, thiserror::Error)]
pub enum CatalogueError {
    #[error("cannot read `{path}`: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("`{path}` is not valid JSON: {message}")]
    Json { path: String, message: String },
    #[error("`{path}`: {message}")]
    Format { path: String, message: String },
    #[error("the catalogue is empty: no product with a valid ASIN")]
    Empty,
}

/// Per-product entries of WebShop's attribute file (`items_ins_v2*.json`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AttributeEntry {
    #[serde(default)]
    pub attributes: Option<Vec<String>>,
    #[serde(default)]
    pub instruction: Option<String>,
    #[serde(default)]
    pub instruction_attributes: Option<Vec<String>>,
}

/// A loaded catalogue: products in file order (duplicates and bad ASINs dropped).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Catalogue {
    pub products: Vec<Product>,
}

fn str_field(v: &Value, key: &str) -> String {
    match v.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

/// WebShop's option-value normalisation: strip, `/` -> ` | `, lower-case.
pub fn normalize_option_value(value: &str) -> String {
    value.trim().replace('/', " | ").to_lowercase()
}

/// Parses WebShop's `pricing` string (`"$12.99"`, `"$10.00$20.00"`, ...): every `$`-separated
/// piece with its non-digit, non-dot characters removed; at most two are kept.
pub fn parse_pricing_text(text: &str) -> Vec<f64> {
    let prices: Vec<f64> = text
        .split('$')
        .skip(1)
        .filter_map(|piece| {
            let digits: String = piece
                .chars()
                .filter(|c| c.is_ascii_digit() || *c == '.')
                .collect();
            digits.parse::<f64>().ok()
        })
        .collect();
    prices.into_iter().take(2).collect()
}

/// Python's `str(float)` for the prices WebShop prints (`100.0`, `12.99`, `877.8`).
pub fn python_float(x: f64) -> String {
    if x.is_finite() && x == x.trunc() && x.abs() < 1e16 {
        format!("{x:.1}")
    } else {
        format!("{x}")
    }
}

/// The price tag WebShop shows for a pricing list.
pub fn price_tag(pricing: &[f64]) -> String {
    match pricing {
        [] => "$100.0".to_string(),
        [one] => format!("${}", python_float(*one)),
        [low, high, ..] => format!("${} to ${}", python_float(*low), python_float(*high)),
    }
}

/// The entries of a name -> contents map: a JSON object (key order lost by `serde_json::Value`),
/// or the `[[name, contents], ...]` pairs `parse_product_values` writes to keep the file order.
fn map_entries(v: &Value) -> Option<Vec<(String, &Value)>> {
    match v {
        Value::Object(map) => Some(map.iter().map(|(k, v)| (k.clone(), v)).collect()),
        Value::Array(pairs) => Some(
            pairs
                .iter()
                .filter_map(|pair| Some((pair.get(0)?.as_str()?.to_string(), pair.get(1)?)))
                .collect(),
        ),
        _ => None,
    }
}

fn parse_options(raw: &Value) -> IndexMap<String, Vec<String>> {
    let mut options = IndexMap::new();
    // The processed form (`options`) when present, else the scraped `customization_options`.
    if let Some(entries) = raw.get("options").and_then(map_entries) {
        for (name, values) in entries {
            if let Value::Array(values) = values {
                let values = values
                    .iter()
                    .filter_map(Value::as_str)
                    .map(normalize_option_value)
                    .collect();
                options.insert(name.to_lowercase(), values);
            }
        }
        return options;
    }
    if let Some(entries) = raw.get("customization_options").and_then(map_entries) {
        for (name, contents) in entries {
            let Value::Array(contents) = contents else {
                continue;
            };
            let values = contents
                .iter()
                .map(|c| match c.get("value") {
                    Some(Value::String(s)) => normalize_option_value(s),
                    _ => c.as_str().map(normalize_option_value).unwrap_or_default(),
                })
                .collect();
            options.insert(name.to_lowercase(), values);
        }
    }
    options
}

fn parse_pricing(raw: &Value) -> Vec<f64> {
    match raw.get("pricing") {
        Some(Value::String(s)) => parse_pricing_text(s),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|p| match p {
                Value::Number(n) => n.as_f64(),
                Value::String(s) => parse_pricing_text(&format!("${}", s.trim_start_matches('$')))
                    .first()
                    .copied(),
                _ => None,
            })
            .take(2)
            .collect(),
        Some(Value::Number(n)) => n.as_f64().into_iter().collect(),
        _ => Vec::new(),
    }
}

fn parse_reviews(raw: &Value) -> Vec<Review> {
    let Some(Value::Array(items)) = raw.get("Reviews").or_else(|| raw.get("reviews")) else {
        return Vec::new();
    };
    items
        .iter()
        .map(|r| Review {
            title: str_field(r, "title"),
            score: r
                .get("score")
                .or_else(|| r.get("stars"))
                .and_then(value_as_i64)
                .unwrap_or(0),
            body: if r.get("body").is_some() {
                str_field(r, "body")
            } else {
                str_field(r, "review")
            },
        })
        .collect()
}

fn value_as_i64(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_f64().map(|f| f as i64),
        Value::String(s) => s.trim().parse::<f64>().ok().map(|f| f as i64),
        _ => None,
    }
}

/// Builds one product from a raw or processed WebShop product dict, as `load_products` does.
pub fn product_from_value(
    raw: &Value,
    attributes: Option<&IndexMap<String, AttributeEntry>>,
) -> Option<Product> {
    let asin = str_field(raw, "asin");
    if asin.is_empty() || asin == "nan" || asin.chars().count() > 10 {
        return None;
    }
    let name = str_field(raw, "name");
    // WebShop sets `Title = name`; a processed product (or a reward test case) carries its own.
    let title = match raw.get("Title") {
        Some(Value::String(t)) => t.clone(),
        _ => name.clone(),
    };
    let description = if raw.get("full_description").is_some() {
        str_field(raw, "full_description")
    } else {
        str_field(raw, "Description")
    };
    let bullet_points = match raw
        .get("small_description")
        .or_else(|| raw.get("BulletPoints"))
    {
        Some(Value::Array(items)) => items
            .iter()
            .map(|b| b.as_str().unwrap_or_default().to_string())
            .collect(),
        Some(Value::String(s)) => vec![s.clone()],
        _ => vec![String::new()],
    };
    let pricing = parse_pricing(raw);
    let tag = match raw.get("Price") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        _ => price_tag(&pricing),
    };
    let pricing = if pricing.is_empty() {
        vec![100.0]
    } else {
        pricing
    };
    let entry = attributes.and_then(|a| a.get(&asin));
    let product_attributes = match (attributes, entry.and_then(|e| e.attributes.clone())) {
        (_, Some(list)) => list,
        // No attribute file at all: keep the attributes a processed product carries.
        (None, None) => match raw.get("Attributes") {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect(),
            _ => vec![DUMMY_ATTR.to_string()],
        },
        (Some(_), None) => vec![DUMMY_ATTR.to_string()],
    };
    let main_image = match raw.get("images") {
        Some(Value::Array(images)) => images
            .first()
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        _ => str_field(raw, "MainImage"),
    };
    Some(Product {
        name,
        title,
        description,
        bullet_points,
        category: str_field(raw, "category"),
        query: str_field(raw, "query").to_lowercase().trim().to_string(),
        product_category: str_field(raw, "product_category"),
        price_tag: tag,
        pricing,
        rating: match raw.get("Rating") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => "N.A.".to_string(),
        },
        reviews: parse_reviews(raw),
        options: parse_options(raw),
        attributes: product_attributes,
        instruction_text: entry.and_then(|e| e.instruction.clone()),
        instruction_attributes: entry.and_then(|e| e.instruction_attributes.clone()),
        main_image,
        asin,
    })
}

fn read(path: &Path) -> Result<String, CatalogueError> {
    std::fs::read_to_string(path).map_err(|source| CatalogueError::Read {
        path: path.display().to_string(),
        source,
    })
}

/// Reads WebShop's attribute file `{asin: {attributes, instruction?, instruction_attributes?}}`.
pub fn load_attributes(path: &Path) -> Result<IndexMap<String, AttributeEntry>, CatalogueError> {
    let text = read(path)?;
    serde_json::from_str(&text).map_err(|e| CatalogueError::Json {
        path: path.display().to_string(),
        message: e.to_string(),
    })
}

/// The key order of a product's option maps, read by a second, order-keeping parse (serde
/// keeps document order when deserialising into an `IndexMap`).
#[derive(Debug, Default, Deserialize)]
struct OptionKeyOrder {
    #[serde(default)]
    options: Option<KeysIfMap>,
    #[serde(default)]
    customization_options: Option<KeysIfMap>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum KeysIfMap {
    Map(IndexMap<String, serde::de::IgnoredAny>),
    Other(serde::de::IgnoredAny),
}

#[derive(Debug, Deserialize)]
struct LineKeyOrder {
    #[serde(default)]
    product: Option<OptionKeyOrder>,
    #[serde(default)]
    options: Option<KeysIfMap>,
    #[serde(default)]
    customization_options: Option<KeysIfMap>,
}

/// Rewrites the option maps of `product` as `[[name, contents], ...]` in file order.
fn keep_option_order(product: &mut Value, order: &OptionKeyOrder) {
    for (field, keys) in [
        ("options", &order.options),
        ("customization_options", &order.customization_options),
    ] {
        let (Some(KeysIfMap::Map(keys)), Some(Value::Object(map))) = (keys, product.get(field))
        else {
            continue;
        };
        let pairs: Vec<Value> = keys
            .keys()
            .filter_map(|k| {
                map.get(k)
                    .map(|v| Value::Array(vec![Value::String(k.clone()), v.clone()]))
            })
            .collect();
        product[field] = Value::Array(pairs);
    }
}

/// Parses product dicts from a file's text: a JSON list of products, or JSON lines where each
/// line is `{id, contents, product}` (or a bare product).
pub fn parse_product_values(text: &str, path: &str) -> Result<Vec<Value>, CatalogueError> {
    let trimmed = text.trim_start();
    if trimmed.starts_with('[') {
        let value: Value = serde_json::from_str(trimmed).map_err(|e| CatalogueError::Json {
            path: path.to_string(),
            message: e.to_string(),
        })?;
        let Value::Array(mut items) = value else {
            return Err(CatalogueError::Format {
                path: path.to_string(),
                message: "expected a list of products".into(),
            });
        };
        if let Ok(orders) = serde_json::from_str::<Vec<OptionKeyOrder>>(trimmed) {
            for (item, order) in items.iter_mut().zip(&orders) {
                keep_option_order(item, order);
            }
        }
        return Ok(items);
    }
    let mut items = Vec::new();
    for (line_no, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let value: Value = serde_json::from_str(line).map_err(|e| CatalogueError::Json {
            path: path.to_string(),
            message: format!("line {}: {e}", line_no + 1),
        })?;
        let order = serde_json::from_str::<LineKeyOrder>(line).ok();
        match value {
            Value::Object(mut map) => match map.remove("product") {
                Some(mut product @ Value::Object(_)) => {
                    if let Some(order) = order.as_ref().and_then(|o| o.product.as_ref()) {
                        keep_option_order(&mut product, order);
                    }
                    items.push(product)
                }
                Some(_) => {
                    return Err(CatalogueError::Format {
                        path: path.to_string(),
                        message: format!("line {}: `product` is not an object", line_no + 1),
                    })
                }
                None => {
                    let mut product = Value::Object(map);
                    if let Some(LineKeyOrder {
                        options,
                        customization_options,
                        ..
                    }) = order
                    {
                        keep_option_order(
                            &mut product,
                            &OptionKeyOrder {
                                options,
                                customization_options,
                            },
                        );
                    }
                    items.push(product)
                }
            },
            _ => {
                return Err(CatalogueError::Format {
                    path: path.to_string(),
                    message: format!("line {}: expected a JSON object", line_no + 1),
                })
            }
        }
    }
    Ok(items)
}

impl Catalogue {
    /// Builds a catalogue from product dicts, dropping bad and repeated ASINs as WebShop does.
    pub fn from_values(
        values: &[Value],
        attributes: Option<&IndexMap<String, AttributeEntry>>,
    ) -> Result<Catalogue, CatalogueError> {
        let mut seen = std::collections::HashSet::new();
        let products: Vec<Product> = values
            .iter()
            .filter_map(|v| product_from_value(v, attributes))
            .filter(|p| seen.insert(p.asin.clone()))
            .collect();
        if products.is_empty() {
            return Err(CatalogueError::Empty);
        }
        Ok(Catalogue { products })
    }

    /// Loads a WebShop product file (raw list or JSONL) and, optionally, its attribute file.
    pub fn load(products: &Path, attributes: Option<&Path>) -> Result<Catalogue, CatalogueError> {
        let text = read(products)?;
        let values = parse_product_values(&text, &products.display().to_string())?;
        let attributes = attributes.map(load_attributes).transpose()?;
        Catalogue::from_values(&values, attributes.as_ref())
    }

    pub fn get(&self, asin: &str) -> Option<&Product> {
        self.products.iter().find(|p| p.asin == asin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pricing_and_tags_follow_webshop() {
        assert_eq!(parse_pricing_text("$12.99"), vec![12.99]);
        assert_eq!(
            parse_pricing_text("$1,299.00$1,499.50$9"),
            vec![1299.0, 1499.5]
        );
        assert_eq!(price_tag(&[877.8]), "$877.8");
        assert_eq!(price_tag(&[10.0, 20.5]), "$10.0 to $20.5");
        assert_eq!(price_tag(&[]), "$100.0");
        assert_eq!(normalize_option_value(" Black/White "), "black | white");
    }

    #[test]
    fn raw_product_is_normalised() {
        let raw: Value = serde_json::json!({
            "asin": "B0RAW00001", "name": "Cotton Tee", "full_description": "Soft.",
            "pricing": "$10.00$20.00", "images": ["img.jpg"], "product_category": "A › B",
            "small_description": "One bullet", "category": "fashion", "query": " Tee Shirts ",
            "customization_options": {"Color": [{"value": "Navy/White", "image": null}], "Size": null}
        });
        let mut attrs = IndexMap::new();
        attrs.insert(
            "B0RAW00001".to_string(),
            AttributeEntry {
                attributes: Some(vec!["cotton".into()]),
                instruction: Some("i want a tee".into()),
                instruction_attributes: Some(vec!["cotton".into()]),
            },
        );
        let p = product_from_value(&raw, Some(&attrs)).unwrap();
        assert_eq!(p.title, "Cotton Tee");
        assert_eq!(p.bullet_points, vec!["One bullet"]);
        assert_eq!(p.pricing, vec![10.0, 20.0]);
        assert_eq!(p.price_tag, "$10.0 to $20.0");
        assert_eq!(p.query, "tee shirts");
        assert_eq!(
            p.options.get("color").unwrap(),
            &vec!["navy | white".to_string()]
        );
        assert!(!p.options.contains_key("size"));
        assert_eq!(p.attributes, vec!["cotton"]);
        assert_eq!(p.main_image, "img.jpg");
        // Not in the attribute file: DUMMY_ATTR, no instruction.
        let other = product_from_value(
            &serde_json::json!({"asin": "B0RAW00002", "name": "X"}),
            Some(&attrs),
        )
        .unwrap();
        assert_eq!(other.attributes, vec![DUMMY_ATTR]);
        assert_eq!(other.instruction_text, None);
        assert_eq!(other.pricing, vec![100.0]);
        assert_eq!(other.price_tag, "$100.0");
        // Bad ASINs are dropped.
        assert!(product_from_value(&serde_json::json!({"asin": "nan"}), None).is_none());
        assert!(product_from_value(&serde_json::json!({"asin": "B0123456789X"}), None).is_none());
    }
}
