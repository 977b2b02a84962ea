import re, fnmatch
def parse(path='/usr/share/doc/gcompris-qt-data/copyright'):
    paras=open(path).read().split('\n\n'); rules=[]
    for p in paras:
        m=re.search(r'^Files:(.*?)(?=^\S)',p+'\nX',re.M|re.S)
        l=re.search(r'^License:\s*(.+)$',p,re.M)
        if m and l:
            pats=m.group(1).split(); rules.append((pats,l.group(1).strip()))
    return rules
RULES=parse()
def license_for(k):
    rel=k.replace('/gcompris/','',1)
    stem=re.sub(r'\.[^./]+$','',rel); lic=None
    for pats,l in RULES:
        for pat in pats:
            ps=re.sub(r'\.(jpe?g|png|svg|webp)$','',pat)
            if fnmatch.fnmatch(rel,pat) or fnmatch.fnmatch(stem,ps) or fnmatch.fnmatch(stem+'.x',pat.replace('*.jpg','*').replace('*.png','*')):
                lic=l
    return lic
if __name__=='__main__':
    for l in open('/tmp/pt/gc.txt'):
        k=l.strip().replace('/tmp/pt/gc','')
        print(license_for(k), k)
