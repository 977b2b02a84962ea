import struct, zlib
def read_rcc(path):
    b=open(path,'rb').read(); assert b[:4]==b'qres'
    ver,tree,data,names=struct.unpack('>IIII',b[4:20])
    nsz=22 if ver>=2 else 14
    def name(off):
        o=names+off; ln=struct.unpack('>H',b[o:o+2])[0]; return b[o+6:o+6+2*ln].decode('utf-16-be')
    out={}
    def walk(idx,prefix):
        o=tree+idx*nsz; noff,flags=struct.unpack('>IH',b[o:o+6])
        nm=name(noff) if idx else ''
        if flags&2:
            cnt,first=struct.unpack('>II',b[o+6:o+14])
            for c in range(cnt): walk(first+c,prefix+nm+'/' if idx else '/')
        else:
            doff=struct.unpack('>I',b[o+10:o+14])[0]; p=data+doff
            sz=struct.unpack('>I',b[p:p+4])[0]; d=b[p+4:p+4+sz]
            if flags&1: d=zlib.decompress(d[4:])
            elif flags&4:
                import zstandard; d=zstandard.ZstdDecompressor().decompress(d)
            out[prefix+nm]=d
    walk(0,'')
    return out
if __name__=='__main__':
    import sys
    for f in sys.argv[1:]:
        r=read_rcc(f)
        for k,v in r.items(): print(len(v),k)
