//! `devices.export`: the tenant's devices as CSV.

use ferro_tasks::kinds::DevicesExportParams;
use serde_json::{Value, json};
use uuid::Uuid;

use super::context::{JobContext, JobError};

#[derive(sqlx::FromRow)]
struct ExportRow {
    id: Uuid,
    name: String,
    protocol: String,
    host: String,
    port: i32,
    tags: Vec<String>,
    status: String,
}

/// CSV of the tenant's devices (SNMP settings are never exported).
pub async fn run(p: DevicesExportParams, job: &JobContext) -> Result<Vec<Value>, JobError> {
    let mut tx = job.db.begin(job.ctx).await?;
    let rows: Vec<ExportRow> = sqlx::query_as(
        "SELECT id, name, protocol, host, port, tags, status FROM devices \
         WHERE ($1::text IS NULL OR tags @> ARRAY[$1::text]) ORDER BY name, id",
    )
    .bind(&p.tag)
    .fetch_all(&mut *tx)
    .await
    .map_err(ferro_db::DbError::from)?;
    tx.end_read_only();
    let mut csv = String::from("id,name,protocol,host,port,tags,status\n");
    for r in &rows {
        let fields = [
            r.id.to_string(),
            r.name.clone(),
            r.protocol.clone(),
            r.host.clone(),
            r.port.to_string(),
            r.tags.join(";"),
            r.status.clone(),
        ];
        let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
        csv.push_str(&line.join(","));
        csv.push('\n');
    }
    Ok(vec![
        json!({"format": "csv", "rows": rows.len(), "csv": csv}),
    ])
}

/// Quotes a CSV field when needed, and defuses spreadsheet formulas: a
/// field starting with any character OWASP lists for CSV injection (`=`,
/// `+`, `-`, `@`, tab, carriage return) gets a leading `'`.
fn csv_field(value: &str) -> String {
    let value = if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{value}")
    } else {
        value.to_owned()
    };
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value
    }
}

#[cfg(test)]
mod tests {
    use super::csv_field;

    #[test]
    fn csv_fields_are_quoted_and_formulas_defused() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=HYPERLINK(1)"), "'=HYPERLINK(1)");
        assert_eq!(csv_field("\t=1+1"), "'\t=1+1");
        assert_eq!(csv_field("\r=1+1"), "\"'\r=1+1\"");
    }
}
