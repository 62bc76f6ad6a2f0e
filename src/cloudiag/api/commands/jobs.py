"""queryAsyncJobResult and listAsyncJobs."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row

from cloudiag.api.context import RequestContext
from cloudiag.api.listing import cs_date, list_payload, paging
from cloudiag.api.registry import LIST_PARAMS, LISTALL, REGISTRY, Command, Param, ResponseField
from cloudiag.db.models import AsyncJob
from cloudiag.domain import JobStatus
from cloudiag.jobs.final_waiters import FinalWaiters
from cloudiag.services import jobs_query

#: The job a call is about: queryAsyncJobResult's parameter, and /client/stream's.
JOBID = Param("jobid", "uuid", "the ID of the asynchronous job", required=True)


def job_view(job: AsyncJob | Row[Any], base_url: str = "") -> dict[str, Any]:
    """A job (its object, or a row of its columns) as CloudStack's AsyncJobResponse shows it;
    a download URL in its result (a getDiagnosticsData job's, kept from the server's root)
    made absolute on `base_url`."""
    view: dict[str, Any] = {
        "jobid": job.id,
        "accountid": job.account_id,
        "userid": job.user_id,
        "cmd": job.cmd,
        "jobstatus": job.status,
        "jobprocstatus": 0,
        "jobresultcode": job.result_code,
        "jobresulttype": "object",
        "jobinstancetype": job.instance_type,
        "jobinstanceid": job.instance_id,
        "created": cs_date(job.created),
    }
    if job.result is not None:
        view["jobresult"] = _absolute(job.result, base_url)
    if job.completed is not None:
        view["completed"] = cs_date(job.completed)
    if job.request:
        # What was asked (type, ipaddress, params): a cloudiag extension for history views.
        view["request"] = job.request
    return view


def _absolute(result: dict[str, Any], base_url: str) -> dict[str, Any]:
    diagnostics = result.get("diagnostics")
    if not base_url or not isinstance(diagnostics, dict):
        return result
    url = diagnostics.get("url")
    if not isinstance(url, str) or not url.startswith("/"):
        return result
    return {**result, "diagnostics": {**diagnostics, "url": base_url + url}}


#: The longest a queryAsyncJobResult may wait for its job to be final (cloudiag's `wait`).
MAX_WAIT = 30


async def query_async_job_result(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    """One job's state and, once finished, its result; with `wait`, answered as soon as the
    job is final (or when the wait is over), so a client need not poll."""
    wait = params.get("wait") or 0
    if not wait:
        job = await jobs_query.get_job(ctx.app.db, ctx.user, params["jobid"])
        return job_view(job, ctx.base_url)
    runner = ctx.app.runner
    # (Some tests serve the API without a job engine: nobody wakes the reader then, and it
    # reads the job's row again every RECHECK seconds.)
    finals = runner.finals if runner is not None else FinalWaiters()
    job = await jobs_query.wait_final(ctx.app.db, finals, ctx.user, params["jobid"], wait)
    return job_view(job, ctx.base_url)


async def list_async_jobs(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    """The caller's jobs (an admin with listall=true: everyone's), newest first."""
    jobs, total = await jobs_query.list_jobs(
        ctx.app.db,
        ctx.user,
        paging(params),
        listall=bool(params.get("listall")),
        instance_id=params.get("instanceid"),
        keyword=params.get("keyword"),
    )
    views = [{**job_view(job, ctx.base_url), "username": job.username or ""} for job in jobs]
    return list_payload("asyncjobs", views, total)


_JOB_RESPONSE = (
    ResponseField("jobid", "string", "the ID of the async job"),
    ResponseField(
        "jobstatus", "integer", ", ".join(f"{s.value} {s.name.lower()}" for s in JobStatus)
    ),
    ResponseField("jobresultcode", "integer", "the result code of the job"),
    ResponseField("jobresulttype", "string", "the result type"),
    ResponseField("jobresult", "responseobject", "the result of the job"),
    ResponseField("cmd", "string", "the command the job runs"),
    ResponseField("created", "date", "when the job was created"),
    ResponseField("completed", "date", "when the job finished"),
    ResponseField("jobinstancetype", "string", "the type of the object the job acts on"),
    ResponseField("jobinstanceid", "string", "the id of that object"),
)

REGISTRY.add(
    Command(
        "queryAsyncJobResult",
        "Retrieves the current status of asynchronous job.",
        query_async_job_result,
        params=(
            JOBID,
            Param(
                "wait",
                "integer",
                "answer once the job is final, or after this many seconds (cloudiag; "
                "0, the default, answers at once as CloudStack does)",
                minimum=0,
                maximum=MAX_WAIT,
            ),
        ),
        response=_JOB_RESPONSE,
        cmd_class="org.apache.cloudstack.api.command.user.job.QueryAsyncJobResultCmd",
    )
)
REGISTRY.add(
    Command(
        "listAsyncJobs",
        "Lists all pending asynchronous jobs for the account.",
        list_async_jobs,
        params=(
            LISTALL,
            Param("instanceid", "uuid", "only jobs on this object, e.g. a system VM (cloudiag)"),
            *LIST_PARAMS,
        ),
        response=_JOB_RESPONSE,
        cmd_class="org.apache.cloudstack.api.command.user.job.ListAsyncJobsCmd",
    )
)
