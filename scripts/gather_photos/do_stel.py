import sys, os, shutil, configparser, random
sys.path.insert(0,'/tmp/pt'); from common import *
from PIL import Image
import numpy as np
src='stellarium-data'; ver=pkgver(src); lic='GPL-2+'
base='/usr/share/stellarium/landscapes/'
shutil.rmtree('/work/photos/'+src,ignore_errors=True)
recs=[]
def sky(W,H,horizon_row):
    y=np.arange(H,dtype=np.float32)[:,None]
    t=np.clip(y/max(1,horizon_row),0,1)
    top=np.array([70,125,195],np.float32); bot=np.array([185,212,235],np.float32)
    c=top+(bot-top)*t[...,None]
    c=np.broadcast_to(c,(H,W,3)).astype(np.uint8)
    return Image.fromarray(np.ascontiguousarray(c),'RGB').convert('RGBA')
def load_pano(name):
    d=base+name+'/'; cp=configparser.ConfigParser(strict=False); cp.read(d+'landscape.ini'); L=cp['landscape']
    if L['type']=='old_style':
        n=int(L['nbside']); ims=[Image.open(d+L[L[f'side{i}'].split(':')[0]]).convert('RGBA') for i in range(n)]
        W=sum(i.width for i in ims); H=ims[0].height; S=Image.new('RGBA',(W,H)); x=0
        for i in ims: S.paste(i,(x,0)); x+=i.width
        top=float(L['decor_alt_angle'])+float(L['decor_angle_shift']); span=float(L['decor_alt_angle'])
        origin=','.join(d+L[L[f'side{i}'].split(':')[0]] for i in range(n))
    else:
        S=Image.open(d+L['maptex']).convert('RGBA'); W,H=S.size
        top=float(L['maptex_top']); span=top+90.0; origin=d+L['maptex']
    return S,top,span,origin
rnd=random.Random(1)
for name in ['garching','guereins','hurricane','grossmugl']:
    S,top,span,origin=load_pano(name)
    W,H=S.size; pxh=W/360.0; pxv=H/span
    # resample vertically so that pixels are square in degrees
    Hn=round(H*pxh/pxv); S=S.resize((W,Hn),Image.LANCZOS); p=pxh
    bottom=top-span if name!='grossmugl' else -35.0   # limit strong distortion near nadir
    # build tall canvas: sky above, covering up to +60 deg
    skytop=60.0; pad=round((skytop-top)*p)
    canvas_h=pad+Hn
    # wrap horizontally for crops crossing the seam
    wide=Image.new('RGBA',(W*2,Hn)); wide.paste(S,(0,0)); wide.paste(S,(W,0))
    k=0; az=rnd.uniform(0,40)
    while az<360:
        fov=rnd.uniform(50,75); aspect=rnd.choice([4/3,3/2,4/3])
        hdeg=fov/aspect; below=hdeg*rnd.uniform(0.38,0.62)
        wb=max(-below,bottom); wt=wb+hdeg
        x0=round(az*p); cw=round(fov*p)
        y0=round((skytop-wt)*p); ch=round(hdeg*p)   # in canvas coords
        hr=round(skytop*p)-y0  # horizon row in crop
        crop=sky(cw,ch,hr)
        # texture placed at canvas y=pad -> crop y = pad - y0
        tex=wide.crop((x0,max(0,y0-pad),x0+cw,min(Hn,y0-pad+ch)))
        crop.alpha_composite(tex,(0,max(0,pad-y0)))
        save(crop.convert('RGB'),src,f'{name}_az{int(az):03d}',origin,lic,ver,recs,exif=False)
        k+=1; az+=fov*rnd.uniform(0.75,1.0)
dump(recs,src)
