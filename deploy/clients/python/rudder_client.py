"""An example Python client for a rudder server, built on the stubs grpcio-tools generates from proto/.

Subcommands:
  ingest FOLDER [--region R ...] [--brand B]
      Uploads every .md/.markdown/.txt/.html/.htm/.pdf file under FOLDER (recursively, sorted) in one
      IngestService.Ingest client stream. A sidecar NAME.EXT.meta.toml or NAME.meta.toml beside a
      document is sent in the stream just before it, and the server uses it to fill metadata the
      request and the front matter leave empty. --region/--brand, when given, win over both.
      Prints one line per document and a summary; exits 1 if any document failed.
  ask "QUESTION" --region R [--brand B] [--conversation-id ID]
      GenerationService.Generate (server streaming): prints the answer as tokens arrive, then the
      citations and the stats. The request id it prints is what `feedback` rates.
  feedback REQUEST_ID --rating good|bad [--corrected TEXT] [--reason TEXT]
      GenerationService.SubmitFeedback.

The server address is --addr HOST:PORT, else $RUDDER_ADDR, else 127.0.0.1:50051. A gRPC error prints
`error: <STATUS>: <details>` and exits 1.

Generate the stubs first (they go to rudder_pb/ next to this file):
  bash deploy/clients/python/generate.sh     # prints the python to run this file with
"""

import argparse
import hashlib
import os
import sys
import time
from pathlib import Path

import grpc

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "rudder_pb"))
try:
    from rudder.v1 import generation_pb2, generation_pb2_grpc, ingest_pb2, ingest_pb2_grpc
except ImportError as err:
    sys.exit(f"error: cannot import the generated stubs from {HERE / 'rudder_pb'} ({err}); "
             f"run `bash deploy/clients/python/generate.sh` first")

DEFAULT_ADDR = "127.0.0.1:50051"
# Extensions the server's loaders accept (ingest/src/loaders/mod.rs); other files are skipped.
DOCUMENT_EXTENSIONS = {".md", ".markdown", ".txt", ".text", ".html", ".htm", ".pdf"}
SIDECAR_SUFFIX = ".meta.toml"
# Bytes per DocumentData message: well under the server's 4 MiB per-message limit.
PIECE_BYTES = 1024 * 1024


class ClientError(Exception):
    """A local problem (bad folder, unreadable file) reported as `error: ...` without a traceback."""


def one_line(text):
    """`text` with its line breaks folded, so that each result stays on one line."""
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


def status_name(code):
    """The name of a google.rpc.Code number, e.g. 3 -> INVALID_ARGUMENT."""
    for status in grpc.StatusCode:
        if status.value[0] == code:
            return status.name
    return f"CODE_{code}"


# ---------------------------------------------------------------------------------------------------
# ingest
# ---------------------------------------------------------------------------------------------------


def find_documents(folder):
    """Document files under `folder`, sorted by path; sidecars and hidden files are not documents."""
    root = Path(folder)
    if not root.is_dir():
        raise ClientError(f"{folder}: not a directory")
    documents = []
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.name.startswith("."):
            continue
        if path.name.endswith(SIDECAR_SUFFIX) or path.suffix.lower() not in DOCUMENT_EXTENSIONS:
            continue
        documents.append(path)
    return documents


def sidecar_for(path):
    """NAME.EXT.meta.toml, else NAME.meta.toml, beside `path` (the order the server looks them up in)."""
    for candidate in (path.with_name(path.name + SIDECAR_SUFFIX), path.with_name(path.stem + SIDECAR_SUFFIX)):
        if candidate.is_file():
            return candidate
    return None


def upload_messages(documents, metadata, local_errors):
    """The IngestRequest stream: per document [sidecar start/data/end], start, data pieces, end.

    A file that cannot be read is recorded in `local_errors` and left out; nothing raised here may
    escape, since grpc would turn it into a cancelled call.
    """
    for path in documents:
        sidecar = sidecar_for(path)
        try:
            sidecar_bytes = sidecar.read_bytes() if sidecar else None
            handle = path.open("rb")
        except OSError as err:
            local_errors.append(f"{path}: {err.strerror or err}")
            continue
        with handle:
            if sidecar_bytes is not None:
                # A sidecar is uploaded like a document; the server keeps it for the next document
                # whose name it describes and never ingests it on its own.
                yield ingest_pb2.IngestRequest(start=ingest_pb2.DocumentStart(
                    file_name=sidecar.name, size_bytes=len(sidecar_bytes)))
                yield ingest_pb2.IngestRequest(data=ingest_pb2.DocumentData(content=sidecar_bytes))
                yield ingest_pb2.IngestRequest(end=ingest_pb2.DocumentEnd())
            yield ingest_pb2.IngestRequest(start=ingest_pb2.DocumentStart(
                metadata=metadata,
                file_name=path.name,
                size_bytes=os.fstat(handle.fileno()).st_size,
            ))
            digest = hashlib.sha256()
            while True:
                try:
                    piece = handle.read(PIECE_BYTES)
                except OSError as err:
                    # Ending the stream inside the document makes the server fail just this one.
                    local_errors.append(f"{path}: {err.strerror or err}")
                    return
                if not piece:
                    break
                digest.update(piece)
                yield ingest_pb2.IngestRequest(data=ingest_pb2.DocumentData(content=piece))
            # The server checks the whole document against this hash.
            yield ingest_pb2.IngestRequest(end=ingest_pb2.DocumentEnd(sha256=digest.hexdigest()))


def describe_result(result):
    """One line for a DocumentResult: ok / unchanged / error."""
    outcome = ingest_pb2.IngestOutcome
    name = result.file_name
    stored = f"{result.doc_id}@{result.version}"
    if result.outcome == outcome.INGEST_OUTCOME_INGESTED:
        return f"ok         {name}: {stored} ingested, {result.chunk_count} passages"
    if result.outcome == outcome.INGEST_OUTCOME_REPLACED:
        return (f"ok         {name}: {stored} replaced version {result.replaced_version}, "
                f"{result.chunk_count} passages")
    if result.outcome == outcome.INGEST_OUTCOME_UNCHANGED:
        return f"unchanged  {name}: {stored} already stored, {result.chunk_count} passages"
    return f"error      {name}: {status_name(result.error_code)}: {one_line(result.error_message)}"


def cmd_ingest(args, channel):
    documents = find_documents(args.folder)
    if not documents:
        raise ClientError(f"{args.folder}: no .md, .txt, .html or .pdf files")
    metadata = ingest_pb2.DocumentMetadata(regions=args.region or [], brand=args.brand or "")
    print(f"uploading {len(documents)} documents from {args.folder} to {args.addr} ...", file=sys.stderr)

    local_errors = []
    stub = ingest_pb2_grpc.IngestServiceStub(channel)
    response = stub.Ingest(upload_messages(documents, metadata, local_errors), timeout=args.timeout, metadata=auth_metadata(args))

    for line in local_errors:
        print(f"error      {line} (not sent)")
    for result in response.results:
        print(describe_result(result))
    s = response.summary
    print(f"{len(response.results)} results: {s.ingested} ingested, {s.replaced} replaced, "
          f"{s.unchanged} unchanged, {s.failed} failed; {s.chunks_written} passages written, "
          f"{s.bytes_received / 1024:.1f} KiB received, {s.elapsed_ms / 1000:.1f} s on the server")
    return 1 if s.failed or local_errors else 0


# ---------------------------------------------------------------------------------------------------
# ask
# ---------------------------------------------------------------------------------------------------


def bundle_text(bundle):
    """`region[/brand]@version`."""
    brand = f"/{bundle.brand}" if bundle.brand else ""
    return f"{bundle.region}{brand}@{bundle.version}"


def cmd_ask(args, channel):
    sampling = generation_pb2.SamplingParams()
    if args.max_tokens is not None:
        sampling.max_tokens = args.max_tokens
    request = generation_pb2.GenerateRequest(
        question=args.question,
        region=args.region,
        brand=args.brand or "",
        conversation_id=args.conversation_id or "",
        sampling=sampling,
    )
    stub = generation_pb2_grpc.GenerationServiceStub(channel)
    sent = time.monotonic()
    first_token = None
    started = citations = stats = None

    call = stub.Generate(request, timeout=args.timeout, metadata=auth_metadata(args))
    try:
        for event in call:
            kind = event.WhichOneof("event")
            if kind == "started":
                started = event.started
                print(f"[request {started.request_id}, bundle {bundle_text(started.bundle)}, "
                      f"{len(started.passages)} passages]", file=sys.stderr)
            elif kind == "delta":
                if first_token is None:
                    first_token = time.monotonic()
                sys.stdout.write(event.delta.text)
                sys.stdout.flush()
            elif kind == "citations":
                citations = event.citations.citations
            elif kind == "stats":
                stats = event.stats
    except KeyboardInterrupt:
        call.cancel()  # the server stops decoding within one token
        print("\ncancelled", file=sys.stderr)
        return 130
    print()

    if stats is None:
        # The proto promises exactly one stats event at the end of a successful stream.
        raise ClientError("the stream ended without its stats event; the answer may be incomplete")

    print()
    if citations:
        print("Citations:")
        for c in citations:
            print(f"  [{c.marker}] {c.document.doc_id} {c.title} § {c.section} ({c.document.version})")
    else:
        print("Citations: none (the answer cites no passage)")

    finish = generation_pb2.FinishReason.Name(stats.finish_reason).removeprefix("FINISH_REASON_").lower()
    client_ttft = f", {(first_token - sent) * 1000:.0f} ms seen here" if first_token else ""
    print(f"Stats: bundle {bundle_text(stats.bundle)}, "
          f"time to first token {stats.time_to_first_token_ms} ms{client_ttft}, "
          f"{stats.tokens_per_second:.1f} tokens/s "
          f"({stats.output_tokens} output tokens, finish {finish}; "
          f"prompt {stats.prompt_tokens} tokens, {stats.cached_prompt_tokens} cached; "
          f"retrieval {stats.retrieval_ms} ms)")
    if stats.retrieval_skipped:
        print("Note: retrieval was unreachable; this answer is not grounded in any passage.")
    if stats.passages_trimmed:
        print(f"Note: {stats.passages_trimmed} passages did not fit the context and were left out.")
    print(f"Request id: {stats.request_id}  "
          f"(rate it: rudder_client.py feedback {stats.request_id} --rating good)")
    return 0


# ---------------------------------------------------------------------------------------------------
# feedback
# ---------------------------------------------------------------------------------------------------


def cmd_feedback(args, channel):
    rating = {"good": generation_pb2.RATING_GOOD, "bad": generation_pb2.RATING_BAD}[args.rating]
    request = generation_pb2.SubmitFeedbackRequest(
        request_id=args.request_id,
        rating=rating,
        corrected_answer=args.corrected or "",
        reason=args.reason or "",
        author=args.author or "",
    )
    stub = generation_pb2_grpc.GenerationServiceStub(channel)
    response = stub.SubmitFeedback(request, timeout=args.timeout, metadata=auth_metadata(args))
    print(f"feedback recorded: {response.feedback_id}")
    return 0


# ---------------------------------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------------------------------


def auth_metadata(args):
    """The API key header for a server that checks keys (--api-key or RUDDER_API_KEY), or none."""
    return [("authorization", f"Bearer {args.api_key}")] if args.api_key else None


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="rudder_client.py",
        description="Example Python client for the rudder gRPC API (rudder.v1).",
    )
    parser.add_argument("--addr", default=os.environ.get("RUDDER_ADDR") or DEFAULT_ADDR,
                        help=f"server HOST:PORT (default: $RUDDER_ADDR or {DEFAULT_ADDR})")
    parser.add_argument("--api-key", default=os.environ.get("RUDDER_API_KEY") or None, metavar="KEY",
                        help="API key for a server that checks keys (default: $RUDDER_API_KEY)")
    parser.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                        help="deadline for the call (default: none)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    ingest = commands.add_parser("ingest", help="upload a folder of policy documents")
    ingest.add_argument("folder", help="folder to walk for .md, .txt, .html and .pdf files")
    ingest.add_argument("--region", action="append", metavar="R",
                        help="region the documents apply to (repeatable); "
                             "default: from front matter or sidecar")
    ingest.add_argument("--brand", metavar="B",
                        help="brand of the documents; default: from front matter or sidecar")
    ingest.set_defaults(run=cmd_ingest)

    ask = commands.add_parser("ask", help="ask a question and stream the answer")
    ask.add_argument("question")
    ask.add_argument("--region", required=True, metavar="R", help="region, e.g. uk, us, eu")
    ask.add_argument("--brand", metavar="B", help="brand within the region")
    ask.add_argument("--conversation-id", metavar="ID", help="conversation id (keeps A/B assignment sticky)")
    ask.add_argument("--max-tokens", type=int, metavar="N",
                     help="answer length limit (default: the bundle's)")
    ask.set_defaults(run=cmd_ask)

    feedback = commands.add_parser("feedback", help="rate an answer by its request id")
    feedback.add_argument("request_id", metavar="REQUEST_ID")
    feedback.add_argument("--rating", required=True, choices=["good", "bad"])
    feedback.add_argument("--corrected", metavar="TEXT", help="the answer that should have been given")
    feedback.add_argument("--reason", metavar="TEXT", help="why")
    feedback.add_argument("--author", metavar="NAME", help="who rates (agent id or name)")
    feedback.set_defaults(run=cmd_feedback)

    args = parser.parse_args(argv)
    args.addr = args.addr.removeprefix("http://")  # accept the URL form the rudder CLI uses
    return args


def main(argv=None):
    args = parse_args(argv)
    # Answers carry characters such as "£" and "§": never fail on a terminal that cannot show them.
    sys.stdout.reconfigure(errors="replace")
    try:
        with grpc.insecure_channel(args.addr) as channel:
            return args.run(args, channel)
    except grpc.RpcError as err:
        sys.stdout.flush()
        print(f"error: {err.code().name}: {one_line(err.details() or '')}", file=sys.stderr)
        if err.code() == grpc.StatusCode.UNIMPLEMENTED:
            print(f"(the server at {args.addr} does not implement this call in its build)", file=sys.stderr)
        return 1
    except ClientError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
