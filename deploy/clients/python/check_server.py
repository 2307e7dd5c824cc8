"""Checks a running rudder server the way a stock Python gRPC client sees it.

Uses only grpcio, grpcio-reflection (which speaks reflection v1alpha), grpcio-health-checking and
the stubs grpcio-tools generated from proto/:
  - reflection lists the four rudder.v1 services;
  - grpc.health.v1 reports SERVING for the server and each service;
  - each service's generated stub reaches the server (a real RPC answers with a gRPC status).

Usage: check_server.py HOST:PORT
"""

import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

sys.path.insert(0, __import__("os").path.join(__import__("os").path.dirname(__file__), "rudder_pb"))
from rudder.v1 import generation_pb2, generation_pb2_grpc, prompts_pb2, prompts_pb2_grpc  # noqa: E402

SERVICES = [
    "rudder.v1.IngestService",
    "rudder.v1.RetrievalService",
    "rudder.v1.GenerationService",
    "rudder.v1.PromptService",
]


def listed_services(channel):
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    for response in stub.ServerReflectionInfo(iter([request]), timeout=10):
        return [service.name for service in response.list_services_response.service]
    return []


def main(address):
    with grpc.insecure_channel(address) as channel:
        listed = listed_services(channel)
        missing = [s for s in SERVICES if s not in listed]
        if missing:
            sys.exit(f"reflection (v1alpha) does not list {missing}; it lists {listed}")
        print("reflection v1alpha lists:", ", ".join(listed))

        health = health_pb2_grpc.HealthStub(channel)
        for service in [""] + SERVICES:
            status = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10).status
            name = health_pb2.HealthCheckResponse.ServingStatus.Name(status)
            if status != health_pb2.HealthCheckResponse.SERVING:
                sys.exit(f"health of {service or '(server)'} is {name}")
            print(f"health {service or '(server)'}: {name}")

        # The generated stubs reach the server: each call comes back with a gRPC status or a response.
        calls = [
            ("GenerationService.GetModelInfo",
             lambda: generation_pb2_grpc.GenerationServiceStub(channel).GetModelInfo(
                 generation_pb2.GetModelInfoRequest(), timeout=10)),
            ("PromptService.ListBundles",
             lambda: prompts_pb2_grpc.PromptServiceStub(channel).ListBundles(
                 prompts_pb2.ListBundlesRequest(), timeout=10)),
        ]
        for name, call in calls:
            try:
                call()
                print(f"{name}: OK")
            except grpc.RpcError as err:
                if err.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNKNOWN):
                    sys.exit(f"{name} failed: {err.code().name} {err.details()}")
                print(f"{name}: {err.code().name}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:50051")
