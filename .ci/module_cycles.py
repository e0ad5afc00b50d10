#!/usr/bin/env python3
"""Import circles between the modules of a crate (file granularity): `use crate::…`,
`use super::…` and inline `crate::…` paths outside `#[cfg(test)] mod tests`. Exits 1 naming
each circle. Run by `make lint` over every crate's src folder."""
import os,re,sys

def check(root):
    mods={}
    for dp,_,fs in os.walk(root):
        for f in fs:
            if not f.endswith('.rs'): continue
            p=os.path.join(dp,f); rel=os.path.relpath(p,root)[:-3]
            parts=rel.split('/')
            if parts[-1] in ('mod','lib','main'): parts=parts[:-1]
            mods['::'.join(parts)]=p
    def expand(s):
        # expand nested braces in a use tree: returns list of paths
        s=re.sub(r'\s+','',s)
        def rec(prefix,t):
            out=[];depth=0;cur='';items=[]
            for ch in t:
                if ch=='{': depth+=1
                if ch=='}': depth-=1
                if ch==',' and depth==0: items.append(cur);cur=''
                else: cur+=ch
            if cur: items.append(cur)
            for it in items:
                if '{' in it:
                    i=it.index('{'); pre=it[:i]; inner=it[i+1:-1]
                    out+=rec(prefix+pre,inner)
                else: out.append(prefix+it)
            return out
        return rec('',s)
    edges={}
    for m,p in mods.items():
        src=open(p).read()
        src=re.sub(r'#\[cfg\(test\)\]\s*mod tests\s*\{.*','',src,flags=re.S)
        deps=set()
        for u in re.findall(r'\buse\s+([^;]+);',src,flags=re.S):
            for path in expand(u):
                segs=path.split('::')
                if segs[0]=='crate': segs=segs[1:]
                elif segs[0]=='super':
                    base=m.split('::') if m else []
                    # file module: super = parent
                    while segs and segs[0]=='super':
                        base=base[:-1]; segs=segs[1:]
                    segs=base+segs
                elif segs[0]=='self':
                    segs=(m.split('::') if m else [])+segs[1:]
                else: continue
                # longest known module prefix
                for k in range(len(segs),0,-1):
                    cand='::'.join(segs[:k])
                    if cand in mods:
                        if cand!=m and not m.startswith(cand+'::') and not cand.startswith(m+'::') : deps.add(cand)
                        break
        for path in re.findall(r'\bcrate::([a-z_]+(?:::[a-z_]+)*)',src):
            segs=path.split('::')
            for k in range(len(segs),0,-1):
                cand='::'.join(segs[:k])
                if cand in mods:
                    if cand!=m and not m.startswith(cand+'::') and not cand.startswith(m+'::'): deps.add(cand)
                    break
        edges[m]=deps
    # find cycles via Tarjan
    idx={};low={};st=[];on=set();res=[];c=[0]
    sys.setrecursionlimit(10000)
    def sc(v):
        idx[v]=low[v]=c[0];c[0]+=1;st.append(v);on.add(v)
        for w in edges.get(v,()):
            if w not in idx: sc(w);low[v]=min(low[v],low[w])
            elif w in on: low[v]=min(low[v],idx[w])
        if low[v]==idx[v]:
            comp=[]
            while True:
                w=st.pop();on.discard(w);comp.append(w)
                if w==v: break
            if len(comp)>1: res.append(comp)
    for v in edges:
        if v not in idx: sc(v)
    for comp in res:
        print(f"{root}: import circle between " + " and ".join(sorted(comp)))
    return len(res)


if __name__ == "__main__":
    found = sum(check(r) for r in sys.argv[1:])
    sys.exit(1 if found else 0)
