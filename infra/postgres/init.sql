-- One database per city (DESIGN.md): each city's services own a schema each inside it. The postgres image runs this
-- once, when its data volume is empty; the services create their schemas themselves (MIGRATE_ON_START).
create database pilot_shenzhen;
create database pilot_zhuhai;
create database pilot_zhongshan;
