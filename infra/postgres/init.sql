-- One database per city (DESIGN.md): each city's services own a schema each inside it.
create database pilot_shenzhen;
create database pilot_zhuhai;
create database pilot_zhongshan;
