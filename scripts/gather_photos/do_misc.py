import sys, os, shutil
sys.path.insert(0,'/tmp/pt'); from common import *
from PIL import Image
# lomiri-wallpapers-16.04
src='lomiri-wallpapers-16.04'; ver=pkgver(src); shutil.rmtree('/work/photos/'+src,ignore_errors=True); recs=[]
lic={'aitzgorri_by_Aitzol_Berasategi':'CC-BY-4.0','Bridge_by_Sander_Klootwijk':'CC-BY-SA-4.0','free_by_Peter_Nerlich':'CC-BY-SA-4.0',
 'friends_by_Aitzol_Berasategi':'CC-BY-4.0','life_by_Aitzol_Berasategi':'CC-BY-4.0','picosdeeuropa_by_Aitzol_Berasategi':'CC-BY-4.0',
 'Picture_1A_by_freespace':'CC-BY-4.0','seeding_by_Clements_Engelhardt':'CC0-1.0','sunset_by_Aitzol_Berasategi':'CC-BY-4.0','Wine_by_Jakkub_Mede':'CC-BY-4.0'}
for stem,l in lic.items():
    f=f'/usr/share/backgrounds/{stem}.jpg'; save(Image.open(f),src,stem,f,l,ver,recs)
dump(recs,src)
src='libjxl-testdata'; ver=pkgver(src); shutil.rmtree('/work/photos/'+src,ignore_errors=True); recs=[]
b='/usr/share/libjxl-testdata/'
for rel,l in [('external/wesaturate/500px/cvo9xd_keong_macan_srgb8.png','CC0-1.0'),('external/wesaturate/500px/tmshre_riaphotographs_srgb8.png','CC0-1.0'),
              ('jxl/hdr_room.png','BSD-3-clause (BSD-3-clause-Google, JPEG XL Project Authors)'),('jxl/flower/flower.png','BSD-3-clause (BSD-3-clause-Google, JPEG XL Project Authors)')]:
    save(Image.open(b+rel),src,os.path.splitext(os.path.basename(rel))[0],b+rel,l,ver,recs)
dump(recs,src)
