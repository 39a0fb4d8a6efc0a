//! Field types shared by the run-creating bodies (runs and crons), validated the way
//! LangGraph's schema validates them.

use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{
    ArrayBuilder, ObjectBuilder, OneOfBuilder, Schema, SchemaType, Type,
};
use utoipa::{PartialSchema, ToSchema};

pub use entity::states::{MultitaskStrategy, OnCompletion};

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Durability {
    Sync,
    Async,
    Exit,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum StreamMode {
    Values,
    Messages,
    MessagesTuple,
    Tasks,
    Checkpoints,
    Updates,
    Events,
    Debug,
    Custom,
}

/// One stream mode or a list of them.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq, ToSchema)]
#[serde(untagged, expecting = "a stream mode or a list of stream modes")]
pub enum StreamModes {
    One(StreamMode),
    Many(Vec<StreamMode>),
}

/// `"*"` or a list of node names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Nodes {
    All,
    Named(Vec<String>),
}

/// Written by hand: the `Deserialize` above is too (`"*"` is a literal, not any string).
impl PartialSchema for Nodes {
    fn schema() -> RefOr<Schema> {
        let star = ObjectBuilder::new()
            .schema_type(SchemaType::Type(Type::String))
            .enum_values(Some(["*"]))
            .description(Some("every node"));
        let named = ArrayBuilder::new()
            .items(ObjectBuilder::new().schema_type(SchemaType::Type(Type::String)))
            .description(Some("these nodes"));
        OneOfBuilder::new()
            .item(star)
            .item(named)
            .description(Some("\"*\" or a list of node names"))
            .into()
    }
}

impl ToSchema for Nodes {}

impl<'de> Deserialize<'de> for Nodes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged, expecting = "\"*\" or a list of node names")]
        enum Raw {
            Star(String),
            Named(Vec<String>),
        }
        match Raw::deserialize(deserializer)? {
            Raw::Star(s) if s == "*" => Ok(Nodes::All),
            Raw::Star(s) => Err(serde::de::Error::custom(format!(
                "expected \"*\" or a list of node names, got \"{s}\""
            ))),
            Raw::Named(nodes) => Ok(Nodes::Named(nodes)),
        }
    }
}

/// `config`: tags, recursion_limit, configurable, and other keys passed through.
#[allow(dead_code)] // validated now; read by the run executors
#[derive(Debug, Clone, Deserialize, Default, ToSchema)]
pub struct RunConfig {
    pub tags: Option<Vec<String>>,
    pub recursion_limit: Option<i64>,
    pub configurable: Option<Map<String, Value>>,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nodes_take_star_or_list() {
        let all: Nodes = serde_json::from_value(json!("*")).expect("star");
        assert_eq!(all, Nodes::All);
        let named: Nodes = serde_json::from_value(json!(["a"])).expect("list");
        assert_eq!(named, Nodes::Named(vec!["a".into()]));
        assert!(serde_json::from_value::<Nodes>(json!("a")).is_err());
    }

    #[test]
    fn stream_modes_take_one_or_many() {
        let one: StreamModes = serde_json::from_value(json!("values")).expect("one");
        assert_eq!(one, StreamModes::One(StreamMode::Values));
        let many: StreamModes =
            serde_json::from_value(json!(["updates", "messages-tuple"])).expect("many");
        assert_eq!(
            many,
            StreamModes::Many(vec![StreamMode::Updates, StreamMode::MessagesTuple])
        );
        assert!(serde_json::from_value::<StreamModes>(json!("nope")).is_err());
    }
}
