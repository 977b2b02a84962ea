import sys, math
from PIL import Image, ImageDraw, ImageOps
# usage: sheet2.py prefix listfile cell per
pre=sys.argv[1]; files=[l.strip() for l in open(sys.argv[2]) if l.strip()]; cell=int(sys.argv[3]); per=int(sys.argv[4]); cols=8
for s in range(0,len(files),per):
    chunk=files[s:s+per]; rows=math.ceil(len(chunk)/cols)
    S=Image.new('RGB',(cols*cell,rows*(cell+12)),(255,255,255)); d=ImageDraw.Draw(S)
    for j,f in enumerate(chunk):
        i=s+j
        try:
            im=Image.open(f); im.draft('RGB',(cell*2,cell*2)); im=ImageOps.exif_transpose(im)
            if im.mode in ('RGBA','LA','P','PA','I;16','I'):
                im=im.convert('RGBA'); bg=Image.new('RGBA',im.size,(190,190,190,255)); bg.alpha_composite(im); im=bg
            im=im.convert('RGB'); im.thumbnail((cell-4,cell-4))
        except Exception as e:
            im=Image.new('RGB',(cell-4,cell-4),(255,0,0))
        x=(j%cols)*cell; y=(j//cols)*(cell+12)
        S.paste(im,(x+2,y+2)); d.text((x+2,y+cell-1),f"{i} "+f.split('/')[-1][:cell//7],fill=(0,0,0))
    S.save(f"{pre}_{s//per:02d}.png")
