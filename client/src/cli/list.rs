//! `codex-jobs list`: jobs, newest first.

use std::process::ExitCode;

use super::{Output, start::parse_label};
use crate::{
    Client, ClientError,
    json::{JobList, JobView},
    names, pb,
};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only jobs in this state.
    #[arg(long, value_parser = names::state_arg())]
    state: Option<pb::JobState>,
    /// Only jobs with this label, repeatable.
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_label)]
    labels: Vec<(String, String)>,
    /// Jobs per page (1-1000).
    #[arg(long, default_value_t = 20)]
    limit: u32,
    /// Continue after a previous page (its next_page_token).
    #[arg(long)]
    page_token: Option<String>,
}

pub async fn run(client: &mut Client, args: Args, out: Output) -> Result<ExitCode, ClientError> {
    let response = client
        .list(pb::ListRequest {
            states: args.state.into_iter().map(Into::into).collect(),
            labels: args.labels.into_iter().collect(),
            page_size: args.limit,
            page_token: args.page_token.unwrap_or_default(),
        })
        .await?;
    if out.json {
        out.print_json(&JobList::from(&response));
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<36}  {:<9}  {:<4}  {:<20}  PROMPT",
        "ID", "STATE", "EXIT", "CREATED"
    );
    for job in &response.jobs {
        let view = JobView::from(job);
        let created = view
            .created_at
            .as_deref()
            .and_then(|at| at.get(..19))
            .unwrap_or("");
        let exit = job
            .exit_code
            .map(|code| code.to_string())
            .unwrap_or_default();
        let prompt: String = job
            .spec
            .as_ref()
            .map(|spec| spec.prompt.replace('\n', " "))
            .unwrap_or_default()
            .chars()
            .take(60)
            .collect();
        println!(
            "{:<36}  {:<9}  {:<4}  {:<20}  {prompt}",
            job.id,
            names::state_name(job.state()),
            exit,
            created
        );
    }
    if !response.next_page_token.is_empty() {
        println!(
            "more: codex-jobs list --page-token {}",
            response.next_page_token
        );
    }
    Ok(ExitCode::SUCCESS)
}
