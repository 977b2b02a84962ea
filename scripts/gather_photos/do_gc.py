import sys, os, shutil, re
sys.path.insert(0,'/tmp/pt'); from common import *; from rcc import read_rcc; from lic_gc import license_for
from PIL import Image; import io
src='gcompris-qt-data'; ver=pkgver(src)
files=[l.strip() for l in open('/tmp/pt/gc.txt')]
def rng(a,b): return list(range(a,b+1))
keep=rng(1,55)+rng(59,63)+[65,67,69,73]+rng(74,102)+[119,120,121,137,142]+rng(143,184)+rng(186,210)+rng(212,214)
data={}; readme_lic={}
def norm(l):
    l=l.strip(); m={'public domain':'public domain','cc0-1.0':'CC0-1.0','cc0':'CC0-1.0'}
    if l.lower() in m: return m[l.lower()]
    l=re.sub(r'^CC[- ]BY[- ]SA[- ]?',"CC-BY-SA-",l,flags=re.I); l=re.sub(r'^CC[- ]BY[- ](?!SA)',"CC-BY-",l,flags=re.I)
    return l.replace(' ','-')
for r in ['categorization','explore_monuments','explore_world_animals','explore_farm_animals']:
    d=read_rcc(f'/usr/share/gcompris-qt/rcc/{r}.rcc'); data.update(d)
    for k,v in d.items():
        if k.endswith('/README'):
            base=k.rsplit('/',1)[0]
            for blk in re.split(r'\n\s*\n',v.decode('utf-8','replace')):
                lm=re.search(r'^License:\s*(.+)$',blk,re.M); fm=re.search(r'^Files:\s*\n((?:.+\n?)*)',blk,re.M)
                if lm and fm:
                    for fl in fm.group(1).split('\n'):
                        fl=fl.strip()
                        if fl and not re.match(r'^\w+:',fl): readme_lic[base+'/'+fl]=norm(lm.group(1))
shutil.rmtree('/work/photos/'+src,ignore_errors=True); recs=[]; srcs={}
for i in keep:
    k=files[i].replace('/tmp/pt/gc','')
    lic=readme_lic.get(k)
    if lic is None:
        if k.endswith('brandenburgGate.webp') and 'categorization' in k: lic='CC-BY-2.0'
        else: lic=license_for(k)
    lic={'GPLv2+':'GPL-2+'}.get(lic,lic)
    srcs[lic]=srcs.get(lic,0)+1
    if lic.startswith('GPL'): print('fallback',lic,k)
    im=Image.open(io.BytesIO(data[k])); im.load()
    parts=k.split('/'); stem=parts[4]+'_'+parts[-2]+'_'+os.path.splitext(parts[-1])[0]
    rccname=parts[3] if parts[3]!='explore_monuments' else 'explore_monuments'
    origin=f'/usr/share/gcompris-qt/rcc/{parts[4]}.rcc:{k}'
    save(im,src,stem,origin,lic,ver,recs)
print(srcs)
dump(recs,src)
