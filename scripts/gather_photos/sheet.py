import sys, math
from PIL import Image, ImageDraw, ImageOps
# usage: sheet.py out.png cell files...
out=sys.argv[1]; cell=int(sys.argv[2]); files=sys.argv[3:]
n=len(files); cols=min(8,max(1,n)); rows=math.ceil(n/cols)
S=Image.new('RGB',(cols*cell,rows*(cell+12)),(255,255,255))
d=ImageDraw.Draw(S)
for i,f in enumerate(files):
    try:
        im=Image.open(f); im.draft('RGB',(cell*2,cell*2)); im=ImageOps.exif_transpose(im)
        if im.mode in ('RGBA','LA','P','PA'):
            im=im.convert('RGBA'); bg=Image.new('RGBA',im.size,(200,200,200,255)); bg.alpha_composite(im); im=bg
        im=im.convert('RGB'); im.thumbnail((cell-4,cell-4))
    except Exception as e:
        im=Image.new('RGB',(cell-4,cell-4),(255,0,0))
    x=(i%cols)*cell; y=(i//cols)*(cell+12)
    S.paste(im,(x+2,y+2)); d.text((x+2,y+cell-2),f.split('/')[-1][:cell//6],fill=(0,0,0))
S.save(out)
