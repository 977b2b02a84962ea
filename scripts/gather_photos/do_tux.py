import sys, hashlib, os, shutil
sys.path.insert(0,'/tmp/pt'); from common import *
from PIL import Image, ImageFilter
src='tuxpaint-stamps-default'; ver=pkgver(src); lic='GPL-2+'
files=[l.strip() for l in open('/tmp/pt/tux2.txt')]
def rng(a,b): return list(range(a,b+1))
keep=rng(1,47)+[48]+rng(52,55)+rng(57,64)+rng(66,95)+rng(96,98)+rng(100,106)+rng(108,125)
keep+=rng(147,153)+[157,158,165,166,171,178,179,183,184,186,189,191]
keep+=[196,197,198]+rng(200,207)+[209]+rng(214,218)+rng(220,223)+rng(225,227)+[235,239]
keep+=rng(246,249)+rng(251,254)+rng(257,260)+[263,269,278,286,287]
keep+=rng(288,292)+[294,295]+rng(298,306)+rng(332,335)+[336,337,340,358,381,382]
keep+=rng(384,386)+rng(388,394)+rng(396,400)+[402]
pal=[(200,200,200),(225,222,215),(180,182,185),(235,235,235),(210,205,195),(160,165,170),(228,232,236),(190,185,178)]
shutil.rmtree('/work/photos/'+src,ignore_errors=True)
recs=[]; small=[]
for i in sorted(set(keep)):
    f=files[i]; im=Image.open(f); im.load()
    if max(im.size)<100: small.append((i,f,im.size)); continue
    im=im.convert('RGBA')
    bb=im.getchannel('A').point(lambda a:255 if a>8 else 0).getbbox()
    if bb: im=im.crop(bb)
    hsh=int(hashlib.md5(f.encode()).hexdigest(),16)
    w,h=im.size; m=int(max(w,h)*(0.06+0.08*((hsh>>8)%5)/4))
    W,H=w+2*m,h+2*m
    if hsh%3==0:
        # blurred neutral background: grey noise-free gradient with subtle blur of the subject colours
        base=Image.new('RGBA',(W,H),pal[hsh%len(pal)]+(255,))
        ghost=Image.new('RGBA',(W,H),(0,0,0,0)); ghost.paste(im,(m,m))
        bl=ghost.filter(ImageFilter.GaussianBlur(max(W,H)/10))
        bl.putalpha(bl.getchannel('A').point(lambda a:int(a*0.5)))
        base.alpha_composite(bl)
    else:
        base=Image.new('RGBA',(W,H),pal[hsh%len(pal)]+(255,))
    base.alpha_composite(im,(m,m))
    stem=os.path.splitext(os.path.basename(f))[0]
    if sum(os.path.basename(x)==os.path.basename(f) for x in files)>1: stem=os.path.basename(os.path.dirname(f))+'_'+stem
    save(base.convert('RGB'),src,stem,f,lic,ver,recs)
print('small skipped',small)
names=[r['file'] for r in recs]; assert len(names)==len(set(names)),'dup names'
dump(recs,src)
