//! `email.send`: one plain-text message over SMTP (lettre).

use std::time::Duration;

use ferro_tasks::kinds::EmailSendParams;
use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde_json::{Value, json};

use super::context::{JobContext, JobError};

const SEND_TIMEOUT: Duration = Duration::from_secs(30);

pub async fn send(p: EmailSendParams, job: &JobContext) -> Result<Vec<Value>, JobError> {
    let smtp = job.smtp.as_ref().ok_or_else(|| {
        JobError::Permanent("email is not configured on this worker (set SMTP_URL)".into())
    })?;
    let from: Mailbox = smtp
        .from
        .parse()
        .map_err(|e| JobError::Permanent(format!("bad SMTP_FROM: {e}")))?;
    let to: Mailbox =
        p.to.parse()
            .map_err(|e| JobError::Permanent(format!("bad recipient: {e}")))?;
    let message = Message::builder()
        .from(from)
        .to(to)
        .subject(&p.subject)
        .header(lettre::message::header::ContentType::TEXT_PLAIN)
        .body(p.body.clone())
        .map_err(|e| JobError::Permanent(format!("cannot build the message: {e}")))?;
    let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(smtp.url.expose())
        .map_err(|e| JobError::Permanent(format!("bad SMTP_URL: {e}")))?
        .timeout(Some(SEND_TIMEOUT))
        .build();
    let sent = tokio::select! {
        _ = job.cancel.cancelled() => return Err(JobError::Cancelled),
        r = tokio::time::timeout(SEND_TIMEOUT, transport.send(message)) => r,
    };
    let response = sent
        .map_err(|_| JobError::Transient("the SMTP server did not answer in time".into()))?
        .map_err(|e| {
            if e.is_permanent() {
                JobError::Permanent(format!("the SMTP server refused the message: {e}"))
            } else {
                JobError::Transient(format!("sending failed: {e}"))
            }
        })?;
    Ok(vec![
        json!({"to": p.to, "smtp_code": response.code().to_string(),
                   "smtp_message": response.message().collect::<Vec<_>>().join(" ")}),
    ])
}
