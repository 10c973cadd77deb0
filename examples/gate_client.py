import json, os, socket, sys, urllib.error, urllib.request

def device_compliance(accord, claims):  # claims of the user's token; the gate reads deviceid
    body = json.dumps({"accord": accord, "claims": claims}).encode()
    headers = {"Authorization": "Bearer " + os.environ.get("INTUNE_GATE_KEY", ""), "Content-Type": "application/json"}
    url = os.environ.get("INTUNE_GATE_URL", "http://127.0.0.1:8080") + "/api/v1/gate/device-compliance"
    try:  # 200 for allow and deny; every failure below is a deny that says why
        with urllib.request.urlopen(urllib.request.Request(url, body, headers), timeout=float(os.environ.get("INTUNE_GATE_TIMEOUT", "5"))) as response:
            return json.load(response)
    except urllib.error.HTTPError as err:  # 400, 401, 403, 413, 5xx: the gate's { error: { code, message } }
        try:
            error = json.load(err).get("error", {})
        except ValueError:
            error = {}
        return {"decision": "deny", "reason": error.get("code", "http_%d" % err.code), "message": error.get("message", "HTTP %d" % err.code), "event": error.get("event")}
    except (urllib.error.URLError, socket.timeout, OSError, ValueError) as err:  # refused, down, timed out, not JSON
        return {"decision": "deny", "reason": "gate_unavailable", "message": str(getattr(err, "reason", err)), "event": None}

result = device_compliance(sys.argv[1], {"deviceid": sys.argv[2]} if len(sys.argv) > 2 else {})
print(result["decision"], result["reason"], result["event"]["seq"] if result["event"] else None)
if result["decision"] != "allow": print(result.get("message", ""), file=sys.stderr)
