//! Everything the api reads from the environment, validated at start.

use ferro_config::{
    AppEnv, BrokerConfig, ConfigError, DatabaseConfig, Env, HttpConfig, LogConfig, RedisConfig,
};

#[derive(Debug, Clone)]
pub struct ApiConfig {
    pub app_env: AppEnv,
    pub log: LogConfig,
    pub http: HttpConfig,
    pub database: DatabaseConfig,
    pub redis: RedisConfig,
    pub broker: BrokerConfig,
}

impl ApiConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            app_env: AppEnv::from_env(env)?,
            log: LogConfig::from_env(env)?,
            http: HttpConfig::from_env(env)?,
            database: DatabaseConfig::from_env(env)?,
            redis: RedisConfig::from_env(env)?,
            broker: BrokerConfig::from_env(env)?,
        })
    }
}
