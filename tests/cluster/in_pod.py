"""Run inside an app container (``kubectl exec -i … python3 - ARGS < in_pod.py``): what a user's app does.

    python3 - converse API COMPONENT TEXT   # API: http-alpha1 | http-alpha2 | grpc-alpha1 | grpc-alpha2
    python3 - metadata                      # the sidecar's /v1.0/metadata
    python3 - get URL                       # GET any URL: status and body text

Prints one JSON line. Only the standard library, grpcio and parley's Dapr messages, all in the app's
image (the sidecar image).
"""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from typing import Any

SIDECAR = "http://127.0.0.1:3500"


def http(path: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(SIDECAR + path, data=data, headers={"Content-Type": "application/json"})
    try:
        # Long enough for the slow provider of the shutdown test (20 s) and its margin.
        with urllib.request.urlopen(req, timeout=60) as resp:
            return {"status": resp.status, "body": json.loads(resp.read() or b"null")}
    except urllib.error.HTTPError as exc:
        return {"status": exc.code, "body": json.loads(exc.read() or b"null")}


def converse(api: str, component: str, text: str) -> Any:
    if api == "http-alpha1":
        return http(f"/v1.0-alpha1/conversation/{component}/converse", {"inputs": [{"content": text}]})
    if api == "http-alpha2":
        answer = http(f"/v1.0-alpha2/conversation/{component}/converse",
                      {"inputs": [{"messages": [{"ofUser": {"content": [{"text": text}]}}]}]})
        if answer["status"] == 200:
            answer["body"] = answer["body"]["outputs"][0]["choices"][0]["message"]["content"]
        return answer
    # The sidecar image no longer carries the Dapr SDK (parley has its own Dapr messages): the calls
    # the SDK's converse_alpha1/converse_alpha2 make, with grpcio and those messages.
    import grpc

    from parley_sidecar.dapr_proto import ai_pb2

    with grpc.insecure_channel("127.0.0.1:50001") as channel:
        if api == "grpc-alpha1":
            alpha1 = channel.unary_unary("/dapr.proto.runtime.v1.Dapr/ConverseAlpha1",
                                         request_serializer=ai_pb2.ConversationRequest.SerializeToString,
                                         response_deserializer=ai_pb2.ConversationResponse.FromString)
            r1 = alpha1(ai_pb2.ConversationRequest(name=component, inputs=[ai_pb2.ConversationInput(content=text)]),
                        timeout=60)
            return {"status": 200, "body": [o.result for o in r1.outputs]}
        alpha2 = channel.unary_unary("/dapr.proto.runtime.v1.Dapr/ConverseAlpha2",
                                     request_serializer=ai_pb2.ConversationRequestAlpha2.SerializeToString,
                                     response_deserializer=ai_pb2.ConversationResponseAlpha2.FromString)
        user = ai_pb2.ConversationMessage(of_user=ai_pb2.ConversationMessageOfUser(
            content=[ai_pb2.ConversationMessageContent(text=text)]))
        r2 = alpha2(ai_pb2.ConversationRequestAlpha2(name=component, inputs=[ai_pb2.ConversationInputAlpha2(
            messages=[user])]), timeout=60)
        return {"status": 200, "body": r2.outputs[0].choices[0].message.content}


if __name__ == "__main__":
    if sys.argv[1] == "metadata":
        print(json.dumps(http("/v1.0/metadata")["body"]))
    elif sys.argv[1] == "get":
        try:
            with urllib.request.urlopen(sys.argv[2], timeout=20) as got:
                print(json.dumps({"status": got.status, "body": got.read().decode()}))
        except urllib.error.HTTPError as exc:
            print(json.dumps({"status": exc.code, "body": exc.read().decode()}))
        except OSError as exc:
            print(json.dumps({"status": 0, "body": str(exc)}))
    else:
        print(json.dumps(converse(*sys.argv[2:5])))
