import json, os, sys, urllib.request

def device_compliance(accord, claims):  # claims of the user's token; the gate reads deviceid
    body = json.dumps({"accord": accord, "claims": claims}).encode()
    headers = {"Authorization": "Bearer " + os.environ["INTUNE_GATE_KEY"], "Content-Type": "application/json"}
    request = urllib.request.Request(os.environ["INTUNE_GATE_URL"] + "/api/v1/gate/device-compliance", body, headers)
    with urllib.request.urlopen(request, timeout=5) as response:  # 200 for allow and deny; errors raise: deny then
        return json.load(response)

result = device_compliance(sys.argv[1], {"deviceid": sys.argv[2]} if len(sys.argv) > 2 else {})
print(result["decision"], result["reason"], result["event"]["seq"] if result["event"] else None)
