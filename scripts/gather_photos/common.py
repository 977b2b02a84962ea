import hashlib, json, os, re, subprocess
from PIL import Image, ImageOps
ROOT='/work/photos'
def pkgver(p):
    return subprocess.check_output(['dpkg-query','-W','-f=${Version}',p]).decode()
def sanitize(s):
    s=re.sub(r'[^A-Za-z0-9._-]+','_',s).strip('_.')
    return s[:120]
def to_rgb(im, bg=(200,200,200)):
    if im.mode in ('RGBA','LA','PA') or (im.mode=='P' and 'transparency' in im.info):
        im=im.convert('RGBA'); b=Image.new('RGBA',im.size,bg+(255,)); b.alpha_composite(im); im=b
    return im.convert('RGB')
def save(im, source, stem, origin, license, version, recs, exif=True):
    if exif: im=ImageOps.exif_transpose(im)
    im=to_rgb(im)
    if max(im.size)>512:
        s=512/max(im.size); im=im.resize((max(1,round(im.width*s)),max(1,round(im.height*s))),Image.LANCZOS)
    d=os.path.join(ROOT,source); os.makedirs(d,exist_ok=True)
    fn=f"{source}__{sanitize(stem)}.jpg"; p=os.path.join(d,fn)
    im.save(p,'JPEG',quality=92)
    h=hashlib.sha256(open(p,'rb').read()).hexdigest()
    recs.append(dict(file=f"{source}/{fn}",source=source,package_version=version,license=license,origin_path=origin,sha256=h,width=im.width,height=im.height))
def dump(recs, source):
    json.dump(recs,open(f'/tmp/pt/recs_{source}.json','w'),indent=1)
    print(source,len(recs))
