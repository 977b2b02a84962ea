# Round 2: append more openly licensed upright photos to /work/photos/sources.json.
# Packages were fetched with `apt-get download` and unpacked with `dpkg -x` into /tmp/pt/debs/x/<pkg>;
# gcompris-qt-data is installed (rcc files read in place); enlightenment-data .edj files hold plain JPEGs (eet.py).
import sys, os, re, io, json, bz2, pickle, subprocess, hashlib
sys.path.insert(0,'/tmp/pt'); from common import *; from rcc import read_rcc; from eet import best_jpeg
from PIL import Image
import numpy as np
X='/tmp/pt/debs/x'
def debver(pkg):
    import glob
    d=glob.glob(f'/tmp/pt/debs/{pkg}_*.deb')[0]
    return subprocess.check_output(['dpkg-deb','-f',d,'Version']).decode().strip()
new=[]
# 1. kphotoalbum demo (GPL-2+, package copyright file); rotation from demo index.xml angle (clockwise degrees)
src='kphotoalbum'; ver=debver(src); recs=[]
import xml.etree.ElementTree as E
demo=f'{X}/kphotoalbum/usr/share/kphotoalbum/demo'
for im_el in E.parse(demo+'/index.xml').getroot().iter('image'):
    fn=im_el.get('file')
    if not fn.endswith('.jpg'): continue
    im=Image.open(f'{demo}/{fn}'); im=ImageOps.exif_transpose(im)
    a=int(im_el.get('angle') or 0)
    if a: im=im.rotate(-a,expand=True)
    save(im,src,fn[:-4],f'/usr/share/kphotoalbum/demo/{fn}','GPL-2+',ver,recs,exif=False)
new+=recs
# 2. palapeli-data collection (licence from each .desktop)
src='palapeli-data'; ver=debver(src); recs=[]
pl={'castle-maintenon':'GFDL','cincinnati-bridge':'public domain','european-honey-bee':'public domain','panther-chameleon-female':'GFDL'}
for stem,l in pl.items():
    p=f'{X}/palapeli-data/usr/share/palapeli/collection/{stem}.jpg'
    desk=open(p[:-4]+'.desktop').read(); assert re.search(r'License=(FDL|GNU-FDL|Public Domain)',desk)
    save(Image.open(p),src,stem,p.replace(f'{X}/palapeli-data',''),l,ver,recs)
new+=recs
# 3. tuxpaint-data templates (Bill Kendrick, GPL-2+) and starters backgrounds (NOAA, public domain)
src='tuxpaint-data'; ver=debver(src); recs=[]
for stem in ['cliff','corn_maze','lighthouse','mossy_log','ocean_waves','sheep','sun_behind_leaves','wool_mill_machine']:
    p=f'{X}/tuxpaint-data/usr/share/tuxpaint/templates/{stem}.jpg'
    save(Image.open(p),src,'template_'+stem,p.replace(f'{X}/tuxpaint-data',''),'GPL-2+',ver,recs)
for fn in ['reef-back.png','skyline-sf-dusk-back.jpeg']:
    p=f'{X}/tuxpaint-data/usr/share/tuxpaint/starters/{fn}'
    save(Image.open(p),src,'starter_'+fn.rsplit('.',1)[0],p.replace(f'{X}/tuxpaint-data',''),'public domain (NOAA)',ver,recs)
new+=recs
# 4. lxqt-themes wallpapers credited to stefonarch in wallpapers/License (CC-BY-SA-3.0)
src='lxqt-themes'; ver=debver(src); recs=[]
for fn in ['after-the-rain.jpg','fog.jpg','this-is-not-windows.jpg','appleflower.png','beam.png','butterfly.png','drop.png','flowers.png']:
    p=f'{X}/lxqt-themes/usr/share/lxqt/wallpapers/{fn}'
    save(Image.open(p),src,fn.rsplit('.',1)[0],p.replace(f'{X}/lxqt-themes',''),'CC-BY-SA-3.0',ver,recs)
new+=recs
# 5. python3-scipy scipy.misc face (BSD-3-clause, Files: *) and ascent (public domain)
src='python3-scipy'; ver=debver(src); recs=[]
m=f'{X}/python3-scipy/usr/lib/python3/dist-packages/scipy/misc'
face=np.frombuffer(bz2.decompress(open(m+'/face.dat','rb').read()),dtype=np.uint8).reshape(768,1024,3)
save(Image.fromarray(face),src,'face',m.replace(f'{X}/python3-scipy','')+'/face.dat','BSD-3-clause',ver,recs)
asc=pickle.load(open(m+'/ascent.dat','rb'))
save(Image.fromarray(np.asarray(asc).astype(np.uint8)),src,'ascent',m.replace(f'{X}/python3-scipy','')+'/ascent.dat','public domain',ver,recs)
new+=recs
# 6. enlightenment-data backgrounds (BSD-2-clause, Carsten Haitzler et al.)
src='enlightenment-data'; ver=debver(src); recs=[]
for stem in ['Bamboo','God-Rays','Green-Maple','Mountain','Peaks','Red-Maple','Snow-Trees','Sunset-Clouds','White-Flower','Yellow-Flower']:
    p=f'{X}/e/usr/share/enlightenment/data/backgrounds/{stem}.edj'
    k,im=best_jpeg(p)
    save(im,src,stem,p.replace(f'{X}/e','')+':'+k,'BSD-2-clause',ver,recs)
new+=recs
# 7. gcompris-qt-data: more activities (erase, details photos, explore_world_music, louis-braille); licence from each README
src='gcompris-qt-data'; ver=pkgver(src); recs=[]
want={'erase':None,'details':['Chenonceau','EgeskovSlotSpejling','EilanDonanCastle','FanoeWindmill','GizahPyramids','Louvre_2007_02_24_c','NDP','Nagoya','Neuschwanstein','OperaSidney','TajMahal','TourEiffel','TowerBridgeLondon'],
      'explore_world_music':['africa','america','australia','ireland','italy','japan','mexico','orchestra'],'louis-braille':['rnib','statue']}
def readme_lic(txt):
    out={}
    for blk in re.split(r'\n\s*\n',txt):
        lm=re.search(r'^License:\s*(.+)$',blk,re.M)
        if not lm: continue
        l=lm.group(1).strip(); l={'GPLv3':'GPL-3','Public domain':'public domain','Public Domain':'public domain'}.get(l,l)
        l=re.sub(r'^CC-BY(-SA)? (\d)',lambda mm:'CC-BY'+(mm.group(1) or '')+'-'+mm.group(2),l).replace(' ','-') if l.startswith('CC') else l
        for fn in re.findall(r'[\w.-]+\.webp',blk): out[fn]=l
    return out
for act,names in want.items():
    d=read_rcc(f'/usr/share/gcompris-qt/rcc/{act}.rcc')
    lic={}
    for k,v in d.items():
        if k.endswith('/README'): lic.update({k.rsplit('/',1)[0]+'/'+f:l for f,l in readme_lic(v.decode('utf-8','replace')).items()})
    for k in sorted(d):
        if not k.endswith('.webp') or len(d[k])<20000: continue
        base=os.path.basename(k)[:-5]
        if act=='erase':
            if '/resource/' not in k or 'transparent' in base: continue
        elif act=='details':
            if not base.endswith('_background') or base[:-11] not in names: continue
        elif base not in names: continue
        l=lic.get(k)
        if l is None: print('NO LICENCE',k); continue
        im=Image.open(io.BytesIO(d[k])); im.load()
        save(im,src,f'{act}_{base}',f'/usr/share/gcompris-qt/rcc/{act}.rcc:{k}',l,ver,recs)
new+=recs
# merge: drop exact (sha256) and near (8x8 dHash, hamming<=4) duplicates of existing photos
S='/work/photos/sources.json'; old=json.load(open(S))
def dh(p):
    g=np.asarray(Image.open(p).convert('L').resize((9,8),Image.LANCZOS),dtype=np.int16); return (g[:,1:]>g[:,:-1]).flatten()
oldh=[dh('/work/photos/'+r['file']) for r in old]; seen={r['sha256'] for r in old}; added=[]
for r in new:
    p='/work/photos/'+r['file']; h=dh(p)
    if r['sha256'] in seen or any(int((h!=o).sum())<=4 for o in oldh) or any(r2['file']==r['file'] for r2 in old):
        print('duplicate, dropped',r['file']); os.remove(p) if not any(r2['file']==r['file'] for r2 in old) else None; continue
    seen.add(r['sha256']); oldh.append(h); added.append(r)
json.dump(old+added,open(S,'w'),indent=1)
import collections; print(collections.Counter((r['source'],r['license']) for r in added)); print('added',len(added),'total',len(old)+len(added))
