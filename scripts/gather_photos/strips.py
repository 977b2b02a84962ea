from PIL import Image
import configparser
base='/usr/share/stellarium/landscapes/'
for name in ['garching','guereins','hurricane']:
    cp=configparser.ConfigParser(strict=False); cp.read(base+name+'/landscape.ini')
    L=cp['landscape']; n=int(L['nbside']); ims=[]
    for i in range(n):
        t=L[f'side{i}'].split(':')[0]; ims.append(Image.open(base+name+'/'+L[t]).convert('RGBA'))
    W=sum(i.width for i in ims); H=ims[0].height
    S=Image.new('RGBA',(W,H)); x=0
    for i in ims: S.paste(i,(x,0)); x+=i.width
    S.save(f'strip_{name}.png'); print(name,S.size)
