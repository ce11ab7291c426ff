import subprocess,sys,re,collections
# Groups the hub's perf samples by what the symbol belongs to. Usage: group.py perf.data
data=sys.argv[1]
out=subprocess.run(["perf","report","-i",data,"--no-children","--sort","dso,symbol","--stdio","-g","none"],capture_output=True,text=True).stdout
g=collections.Counter()
for line in out.splitlines():
    m=re.match(r"\s+([0-9.]+)%\s+(\S+)\s+\[(.)\]\s+(.*)",line)
    if not m: continue
    pct=float(m.group(1)); dso=m.group(2); sym=m.group(4).strip()
    if dso.startswith("[kernel"): k="kernel (TCP/IP over loopback, syscalls)"
    elif re.search(r"aws_lc|aead_|aes_hw|gcm_|_gcm|EVP_|sha256_block|sha512_block",sym): k="TLS crypto (aws-lc)"
    elif "rustls" in sym: k="rustls (records, buffers)"
    elif sym.startswith("h2::") or "h2::" in sym[:60]: k="h2 crate (framing, streams, flow control)"
    elif "hyper" in sym[:80]: k="hyper / hyper-util"
    elif "tokio" in sym[:60]: k="tokio (scheduling, wakeups, I/O readiness)"
    elif "mercure_hub" in sym: k="mercure-hub (queue, body, connection code)"
    elif dso.startswith("libc"): k="libc (memcpy, writev wrappers, malloc)"
    elif "mi_" in sym or "mimalloc" in sym: k="allocator (mimalloc)"
    else: k="other"
    g[k]+=pct
for k,v in g.most_common(): print(f"{v:6.1f}%  {k}")
