//! WebShop search: a BM25 full-text index (tantivy) over each product's title, description,
//! first bullet point and options (WebShop's `contents`), analysed with English stop words and
//! Porter stemming (Lucene's EnglishAnalyzer, which pyserini uses), top 50 hits. The index is
//! built once per catalogue and cached on disk under a directory keyed by the catalogue's
//! fingerprint; when the cache cannot be used it lives in memory.

use super::catalogue::{Catalogue, Product};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tantivy::collector::TopDocs;
use tantivy::query::{BooleanQuery, BoostQuery, Occur, Query, TermQuery};
use tantivy::schema::{
    Field, IndexRecordOption, NumericOptions, Schema, TextFieldIndexing, TextOptions, Value as _,
};
use tantivy::tokenizer::{
    Language, LowerCaser, RemoveLongFilter, SimpleTokenizer, Stemmer, StopWordFilter, TextAnalyzer,
};
use tantivy::{Index, IndexReader, TantivyDocument, Term};

/// Results a search returns (WebShop's `SEARCH_RETURN_N`).
pub const SEARCH_RETURN_N: usize = 50;
/// Results per page (WebShop's `PRODUCT_WINDOW`).
pub const PRODUCT_WINDOW: usize = 10;

const ANALYZER: &str = "webshop_en";
const COMPLETE_MARKER: &str = "oprl-index-complete";

/// Why the index could not be built.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error("search index: {0}")]
    Tantivy(#[from] tantivy::TantivyError),
}

/// The text WebShop indexes for a product (`convert_product_file_format.py`), lower-cased.
pub fn document_text(p: &Product) -> String {
    let option_text = p
        .options
        .iter()
        .map(|(name, values)| format!("{name}: {}", values.join(", ")))
        .collect::<Vec<_>>()
        .join(", and ");
    let first_bullet = p.bullet_points.first().map(String::as_str).unwrap_or("");
    [
        p.title.as_str(),
        p.description.as_str(),
        first_bullet,
        option_text.as_str(),
    ]
    .join(" ")
    .to_lowercase()
}

fn analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(40))
        .filter(LowerCaser)
        .filter(StopWordFilter::new(Language::English).expect("tantivy ships English stop words"))
        .filter(Stemmer::new(Language::English))
        .build()
}

/// The analysed terms of a text (query or document).
pub fn analyze(text: &str) -> Vec<String> {
    let mut analyzer = analyzer();
    let mut stream = analyzer.token_stream(text);
    let mut terms = Vec::new();
    while let Some(token) = stream.next() {
        terms.push(token.text.clone());
    }
    terms
}

/// Where indexes are cached: `$OPRL_CACHE_DIR`, else `$XDG_CACHE_HOME/oprl`, else `~/.cache/oprl`.
pub fn default_cache_root() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("OPRL_CACHE_DIR") {
        return Some(PathBuf::from(dir));
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
        return Some(PathBuf::from(dir).join("oprl"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache").join("oprl"))
}

/// A built index over one catalogue.
pub struct SearchIndex {
    reader: IndexReader,
    contents: Field,
    position: Field,
    /// Where the index lives on disk (`None`: in memory).
    pub location: Option<PathBuf>,
}

impl std::fmt::Debug for SearchIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SearchIndex")
            .field("location", &self.location)
            .finish()
    }
}

fn schema() -> (Schema, Field, Field) {
    let mut builder = Schema::builder();
    let indexing = TextFieldIndexing::default()
        .set_tokenizer(ANALYZER)
        .set_index_option(IndexRecordOption::WithFreqsAndPositions);
    let contents = builder.add_text_field(
        "contents",
        TextOptions::default().set_indexing_options(indexing),
    );
    let position = builder.add_u64_field("position", NumericOptions::default().set_stored());
    (builder.build(), contents, position)
}

fn fill(
    index: &Index,
    catalogue: &Catalogue,
    contents: Field,
    position: Field,
) -> tantivy::Result<()> {
    let mut writer: tantivy::IndexWriter<TantivyDocument> =
        index.writer_with_num_threads(1, 20_000_000)?;
    for (i, product) in catalogue.products.iter().enumerate() {
        let mut doc = TantivyDocument::default();
        doc.add_text(contents, document_text(product));
        doc.add_u64(position, i as u64);
        writer.add_document(doc)?;
    }
    writer.commit()?;
    writer.wait_merging_threads()?;
    Ok(())
}

impl SearchIndex {
    /// Builds the index in memory.
    pub fn in_memory(catalogue: &Catalogue) -> Result<SearchIndex, SearchError> {
        let (schema, contents, position) = schema();
        let index = Index::create_in_ram(schema);
        index.tokenizers().register(ANALYZER, analyzer());
        fill(&index, catalogue, contents, position)?;
        Self::from_index(index, None)
    }

    /// Opens the cached index for this catalogue under `cache_root`, building it there first if
    /// needed; falls back to memory when the directory cannot be used.
    pub fn cached(
        catalogue: &Catalogue,
        cache_root: Option<&Path>,
    ) -> Result<SearchIndex, SearchError> {
        if let Some(root) = cache_root {
            let dir = root.join("webshop-index").join(fingerprint(catalogue));
            if let Ok(index) = Self::open_or_build(catalogue, &dir) {
                return Ok(index);
            }
        }
        Self::in_memory(catalogue)
    }

    fn open_or_build(
        catalogue: &Catalogue,
        dir: &Path,
    ) -> Result<SearchIndex, Box<dyn std::error::Error>> {
        if !dir.join(COMPLETE_MARKER).exists() {
            // Build beside the final place, then rename, so a reader never sees half an index.
            let parent = dir.parent().ok_or("cache directory has no parent")?;
            std::fs::create_dir_all(parent)?;
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            let staging = parent.join(format!(".building-{}-{nanos}", std::process::id()));
            let built = (|| -> Result<(), Box<dyn std::error::Error>> {
                std::fs::create_dir_all(&staging)?;
                let (schema, contents, position) = schema();
                let index = Index::create_in_dir(&staging, schema)?;
                index.tokenizers().register(ANALYZER, analyzer());
                fill(&index, catalogue, contents, position)?;
                drop(index);
                std::fs::write(staging.join(COMPLETE_MARKER), fingerprint(catalogue))?;
                Ok(())
            })();
            if let Err(e) = built {
                let _ = std::fs::remove_dir_all(&staging);
                return Err(e);
            }
            if std::fs::rename(&staging, dir).is_err() {
                // Another process finished first: use its copy.
                let _ = std::fs::remove_dir_all(&staging);
            }
        }
        let index = Index::open_in_dir(dir)?;
        index.tokenizers().register(ANALYZER, analyzer());
        Ok(Self::from_index(index, Some(dir.to_path_buf()))?)
    }

    fn from_index(index: Index, location: Option<PathBuf>) -> Result<SearchIndex, SearchError> {
        let schema = index.schema();
        let contents = schema.get_field("contents")?;
        let position = schema.get_field("position")?;
        let reader = index.reader()?;
        Ok(SearchIndex {
            reader,
            contents,
            position,
            location,
        })
    }

    /// Catalogue positions of the top `limit` products for `query`, best first (ties by position).
    /// Query terms are a bag of words, each boosted by its count (pyserini's default).
    pub fn search(&self, query: &str, limit: usize) -> Vec<usize> {
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for term in analyze(query) {
            *counts.entry(term).or_default() += 1;
        }
        if counts.is_empty() {
            return Vec::new();
        }
        let clauses: Vec<(Occur, Box<dyn Query>)> = counts
            .into_iter()
            .map(|(text, count)| {
                let term = Term::from_field_text(self.contents, &text);
                let query: Box<dyn Query> =
                    Box::new(TermQuery::new(term, IndexRecordOption::WithFreqs));
                let query: Box<dyn Query> = if count > 1 {
                    Box::new(BoostQuery::new(query, count as f32))
                } else {
                    query
                };
                (Occur::Should, query)
            })
            .collect();
        let query = BooleanQuery::new(clauses);
        let searcher = self.reader.searcher();
        let Ok(hits) = searcher.search(&query, &TopDocs::with_limit(limit).order_by_score()) else {
            return Vec::new();
        };
        let mut scored: Vec<(f32, usize)> = hits
            .into_iter()
            .filter_map(|(score, address)| {
                let doc: TantivyDocument = searcher.doc(address).ok()?;
                let position = doc.get_first(self.position)?.as_u64()?;
                Some((score, position as usize))
            })
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        scored.into_iter().map(|(_, position)| position).collect()
    }
}

/// A stable digest of a catalogue's indexed contents: the key of its on-disk search index.
fn fingerprint(catalogue: &Catalogue) -> String {
    // FNV-1a over the indexed text of every product: stable across runs and platforms.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |bytes: &[u8]| {
        for b in bytes {
            hash ^= u64::from(*b);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    };
    for p in &catalogue.products {
        feed(p.asin.as_bytes());
        feed(&[0]);
        feed(document_text(p).as_bytes());
        feed(&[1]);
    }
    format!("{hash:016x}-{}", catalogue.products.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn analyzer_stems_and_drops_stop_words() {
        assert_eq!(
            analyze("The Running Shoes for Men"),
            vec!["run", "shoe", "men"]
        );
    }
}
