import struct, zlib
def read_eet(path):
    f=open(path,'rb'); b=f.read(1<<20)
    magic,nd,ndict=struct.unpack('>III',b[:12]); assert magic==0x1ee70f42
    ents=[]
    for i in range(nd):
        off,size,dsize,noff,nsize,flags=struct.unpack('>6I',b[12+24*i:36+24*i])
        ents.append((off,size,dsize,noff,nsize,flags))
    out={}
    for off,size,dsize,noff,nsize,flags in ents:
        f.seek(noff); name=f.read(nsize).rstrip(b'\0').decode()
        out[name]=(off,size,dsize,flags)
    return f,out
def get(f,ent):
    off,size,dsize,flags=ent; f.seek(off); d=f.read(size)
    return d
def best_jpeg(path, minside=800):
    import io
    from PIL import Image
    f,o=read_eet(path); cands=[]
    for k,v in o.items():
        if not k.startswith('edje/images/'): continue
        d=get(f,v)
        if d[:3]!=b'\xff\xd8\xff': continue
        im=Image.open(io.BytesIO(d)); cands.append((max(im.size),k,d))
    ok=[c for c in cands if c[0]>=minside] or cands
    if not ok: return None,None
    s,k,d=min(ok,key=lambda c:c[0]); return k,Image.open(io.BytesIO(d))
