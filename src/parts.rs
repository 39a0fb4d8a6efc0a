//! The runtime parts built from the configuration, once and in one place: API keys,
//! webhook settings and the graph registry (each graph's executor, and assistant id ↔
//! graph name). `serve` runs on them; `check-config` builds them and stops, so it refuses
//! exactly what `serve` would.

use std::collections::HashMap;

use crate::auth::{ApiKeys, AuthError};
use crate::config::{Config, ConfigError};
use crate::runs::Graph;
use crate::runs::executors::{Executor, GraphError};
use crate::store::assistants::assistant_id_for_graph;
use crate::webhooks;

#[derive(Debug, thiserror::Error)]
pub enum PartsError {
    #[error(transparent)]
    Exposure(#[from] ConfigError),
    #[error(transparent)]
    Keys(#[from] AuthError),
    #[error("webhooks: {0}")]
    Webhooks(#[from] webhooks::SettingsError),
    #[error("graphs.{name}: {source}")]
    Graph { name: String, source: GraphError },
    #[error("cannot build the HTTP client of the graphs: {}", with_causes(.0))]
    Client(reqwest::Error),
}

/// An error with its causes: reqwest's own message ("builder error") names none, its sources
/// do (e.g. no CA certificates in the system's trust store).
pub(crate) fn with_causes(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

pub struct Parts {
    pub api_keys: ApiKeys,
    pub webhooks: webhooks::Settings,
    pub graphs: GraphRegistry,
}

impl Parts {
    /// Builds every part, reading key files and variables (`env`) now, so that whatever
    /// is missing stops start-up instead of the first request that needs it.
    pub fn build(
        config: &Config,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Parts, PartsError> {
        config.check_exposure()?;
        Ok(Parts {
            api_keys: ApiKeys::from_config(&config.auth, &config.limits, env)?,
            webhooks: webhooks::Settings::from_config(config, env)?,
            graphs: GraphRegistry::from_config(config, env)?,
        })
    }
}

/// The configured graphs by assistant id (UUIDv5 of the graph name, as LangGraph derives it).
pub struct GraphRegistry {
    graphs: HashMap<String, Graph>,
}

impl GraphRegistry {
    fn from_config(
        config: &Config,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<GraphRegistry, PartsError> {
        let client = reqwest::Client::builder()
            .no_proxy()
            .build()
            .map_err(PartsError::Client)?;
        let graphs = config
            .graphs
            .iter()
            .map(|(name, graph)| {
                let executor = Executor::from_config(graph, &client, env).map_err(|source| {
                    PartsError::Graph {
                        name: name.clone(),
                        source,
                    }
                })?;
                let graph = Graph {
                    graph_id: name.clone(),
                    executor,
                };
                Ok((assistant_id_for_graph(name).to_string(), graph))
            })
            .collect::<Result<_, PartsError>>()?;
        Ok(GraphRegistry { graphs })
    }

    /// Graph names by assistant id.
    pub fn names(&self) -> HashMap<String, String> {
        self.graphs
            .iter()
            .map(|(id, graph)| (id.clone(), graph.graph_id.clone()))
            .collect()
    }

    /// What may keep a graph's runs from starting although the config is valid (a
    /// program or working directory missing on this machine), one line per graph.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings: Vec<String> = self
            .graphs
            .values()
            .filter_map(|graph| {
                graph
                    .executor
                    .cannot_start()
                    .map(|why| format!("graphs.{}: {why}", graph.graph_id))
            })
            .collect();
        warnings.sort();
        warnings
    }

    pub fn into_map(self) -> HashMap<String, Graph> {
        self.graphs
    }
}
